//! Drawing [`Connection`]s as SVG ladder diagrams, and an HTML page holding several.
//!
//! The output is standalone: no scripts, no external fonts or stylesheets, every piece of
//! text from the capture escaped, so the file opens in any browser or image viewer and
//! renders on a code host. Layout is fixed-width (monospace text, so label widths are
//! known without measuring fonts):
//!
//! ```text
//!  #  time        state  |client|                           |server|  state
//!                        |      |-- label ----------------->|      |
//!                        |      |   HTTP line / notes       |      |
//! ```

use std::fmt::Write as _;

use super::{Arrow, Connection, Diagram, Note, Side};
use crate::tcp::State;

/// Rendering choices.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most arrows drawn per connection. A longer connection shows its first and last
    /// arrows, every arrow where a state changes, and "N segments not drawn" in between.
    pub max_arrows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_arrows: 300 }
    }
}

const WIDTH: u32 = 1000;
const X_CLIENT: f64 = 300.0;
const X_SERVER: f64 = 760.0;
/// How far an arrow drops from sender to receiver: time passes while it travels.
const SLOPE: f64 = 16.0;
const LINE: f64 = 16.0;
const FONT: &str = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, monospace";

const STYLE: &str = "\
text{font-family:DejaVu Sans Mono,Menlo,Consolas,Liberation Mono,monospace;font-size:13px;fill:#1a1a1a}\
.title{font-size:16px;font-weight:bold}\
.box{fill:#eef3f8;stroke:#37474f;stroke-width:1.5}\
.who{font-weight:bold;font-size:14px}\
.life{stroke:#90a4ae;stroke-width:2}\
.time{font-size:11px;fill:#607d8b}\
.state{fill:#fff4c2;stroke:#b58900;stroke-width:1}\
.statet{font-size:12px;font-weight:bold;fill:#5c4300}\
.http{font-weight:bold;fill:#0d47a1}\
.opt{font-size:11px;fill:#607d8b}\
.note{font-size:12px;font-weight:bold;fill:#c62828}\
.gap{font-size:12px;fill:#607d8b;font-style:italic}";

/// Escapes text for XML content and attributes; drops characters XML 1.0 cannot carry.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The whole capture as one SVG document: the connections one below the other.
pub fn render_svg(diagram: &Diagram, options: &Options) -> String {
    let mut body = String::new();
    let mut y = 0.0;
    if diagram.connections.is_empty() {
        body.push_str(
            r#"<text x="20" y="40" class="title">No TCP connection in this capture.</text>"#,
        );
        y = 60.0;
    }
    for c in &diagram.connections {
        let (inner, height) = connection_body(c, options);
        let _ = write!(body, r#"<g transform="translate(0,{y})">{inner}</g>"#);
        y += height;
    }
    let title = match diagram.connections.len() {
        1 => "TCP connection ladder diagram".to_string(),
        n => format!("{n} TCP connections, ladder diagrams"),
    };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&svg_element(&title, y, &body));
    out.push('\n');
    out
}

/// A self-contained HTML page: a table of the connections, then one diagram each.
pub fn render_html(diagram: &Diagram, options: &Options, title: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n\
         <style>body{{font-family:{FONT};margin:2em;color:#1a1a1a}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #b0bec5;padding:.3em .6em;text-align:left}}\
         svg{{display:block;margin:1em 0;max-width:100%;height:auto}}</style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    out.push_str("<table>\n<tr><th>#</th><th>client</th><th>server</th><th>segments</th><th>retransmissions</th><th>duration</th><th>final states (client / server)</th></tr>\n");
    for c in &diagram.connections {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#c{n}\">{n}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td></tr>",
            c.client,
            c.server,
            c.arrows.len(),
            c.retransmissions(),
            millis(c.duration()),
            c.last.0,
            c.last.1,
            n = c.number,
        );
    }
    out.push_str("</table>\n");
    if diagram.connections.is_empty() {
        out.push_str("<p>No TCP connection in this capture.</p>\n");
    }
    for c in &diagram.connections {
        let (inner, height) = connection_body(c, options);
        let _ = writeln!(out, "<h2 id=\"c{}\">Connection {}</h2>", c.number, c.number);
        out.push_str(&svg_element(
            &format!("TCP connection {}", c.number),
            height,
            &inner,
        ));
        out.push('\n');
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn svg_element(title: &str, height: f64, body: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h}\" viewBox=\"0 0 {WIDTH} {h}\" font-family=\"{FONT}\">\
         <title>{t}</title><style>{STYLE}</style>\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>{body}</svg>",
        h = height.ceil(),
        t = escape(title),
    )
}

fn millis(d: std::time::Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn x_of(side: Side) -> f64 {
    match side {
        Side::Client => X_CLIENT,
        Side::Server => X_SERVER,
    }
}

/// Colour of an arrow by what it carries.
fn colour(a: &Arrow) -> &'static str {
    if a.flags.rst {
        "#c62828"
    } else if a.flags.syn {
        "#2e7d32"
    } else if a.flags.fin {
        "#6a1b9a"
    } else if a.len > 0 {
        "#1565c0"
    } else {
        "#546e7a"
    }
}

/// A state label beside `side`'s line at height `y`: left of the client, right of the
/// server.
fn state_label(out: &mut String, side: Side, y: f64, states: &[State]) {
    if states.is_empty() {
        return;
    }
    let text = states
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(" → ");
    let width = text.chars().count() as f64 * 7.4 + 12.0;
    let x = match side {
        Side::Client => X_CLIENT - 12.0 - width,
        Side::Server => X_SERVER + 12.0,
    };
    let _ = write!(
        out,
        r#"<rect class="state" x="{x:.1}" y="{:.1}" width="{width:.1}" height="18" rx="4"/><text class="statet" x="{:.1}" y="{:.1}">{}</text>"#,
        y - 9.0,
        x + 6.0,
        y + 4.5,
        escape(&text)
    );
}

fn arrow(out: &mut String, a: &Arrow, y: f64) {
    let (x1, x2) = (x_of(a.from), x_of(a.from.other()));
    let (y1, y2) = (y, y + SLOPE);
    let colour = colour(a);
    let dashed = if a.notes.contains(&Note::Retransmission) {
        r#" stroke-dasharray="7 4""#
    } else {
        ""
    };
    // Stop the line at the head's base so the tip stays sharp.
    let (dx, dy) = (x2 - x1, y2 - y1);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let (ux, uy) = (dx / len, dy / len);
    let (bx, by) = (x2 - 11.0 * ux, y2 - 11.0 * uy);
    let (nx, ny) = (-uy * 5.0, ux * 5.0);
    let _ = write!(
        out,
        r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{bx:.1}" y2="{by:.1}" stroke="{colour}" stroke-width="2"{dashed}/><polygon points="{x2:.1},{y2:.1} {:.1},{:.1} {:.1},{:.1}" fill="{colour}"/>"#,
        bx + nx,
        by + ny,
        bx - nx,
        by - ny,
    );
}

fn centred(out: &mut String, class: &str, y: f64, text: &str, colour: Option<&str>) {
    let fill = colour
        .map(|c| format!(r#" fill="{c}""#))
        .unwrap_or_default();
    let _ = write!(
        out,
        r#"<text class="{class}" x="{:.1}" y="{y:.1}" text-anchor="middle"{fill}>{}</text>"#,
        (X_CLIENT + X_SERVER) / 2.0,
        escape(text)
    );
}

/// Which arrows to draw: all, or (when there are too many) the first and last ones plus
/// every arrow where a state changes. `None` entries stand for runs left out.
fn selection(c: &Connection, max: usize) -> Vec<Result<&Arrow, usize>> {
    let n = c.arrows.len();
    if n <= max.max(2) {
        return c.arrows.iter().map(Ok).collect();
    }
    let head = max / 2;
    let tail = max - head;
    let mut out = Vec::new();
    let mut skipped = 0usize;
    for (i, a) in c.arrows.iter().enumerate() {
        let keep =
            i < head || i >= n - tail || !a.client_states.is_empty() || !a.server_states.is_empty();
        if keep {
            if skipped > 0 {
                out.push(Err(skipped));
                skipped = 0;
            }
            out.push(Ok(a));
        } else {
            skipped += 1;
        }
    }
    if skipped > 0 {
        out.push(Err(skipped));
    }
    out
}

/// One connection's elements (origin at the top left) and their height.
fn connection_body(c: &Connection, options: &Options) -> (String, f64) {
    let mut out = String::new();
    let retrans = c.retransmissions();
    let mut title = format!(
        "TCP connection {}: {} → {} · {} segments in {}",
        c.number,
        c.client,
        c.server,
        c.arrows.len(),
        millis(c.duration())
    );
    if retrans > 0 {
        title.push_str(&format!(" · {retrans} retransmitted"));
    }
    // A capture taken on the sending host (or on `lo`) often has every checksum unfinished
    // (offloaded to the NIC): say so once instead of on every arrow.
    let all_bad_checksums = !c.arrows.is_empty()
        && c.arrows
            .iter()
            .all(|a| a.notes.contains(&Note::BadChecksum));
    if all_bad_checksums {
        title.push_str(" · checksums offloaded");
    }
    let _ = write!(
        out,
        r#"<text class="title" x="20" y="30">{}</text>"#,
        escape(&title)
    );
    for side in [Side::Client, Side::Server] {
        let x = x_of(side);
        let who = match (side, c.saw_syn) {
            (Side::Client, true) => "client (sent the SYN)",
            (Side::Client, false) => "client",
            (Side::Server, _) => "server",
        };
        let _ = write!(
            out,
            r#"<rect class="box" x="{:.1}" y="44" width="220" height="44" rx="6"/><text class="who" x="{x:.1}" y="62" text-anchor="middle">{}</text><text x="{x:.1}" y="80" text-anchor="middle">{}</text>"#,
            x - 110.0,
            escape(who),
            c.addr(side)
        );
    }
    let mut y = 112.0;
    state_label(&mut out, Side::Client, y, &[c.initial.0]);
    state_label(&mut out, Side::Server, y, &[c.initial.1]);
    if !c.saw_syn {
        centred(
            &mut out,
            "gap",
            y + 4.0,
            "capture began mid-connection: states assumed",
            None,
        );
    }
    y += 34.0;
    let mut rows = String::new();
    for item in selection(c, options.max_arrows) {
        let a = match item {
            Ok(a) => a,
            Err(n) => {
                centred(
                    &mut rows,
                    "gap",
                    y + 6.0,
                    &format!("⋮ {n} segments not drawn (--max-arrows to see more) ⋮"),
                    None,
                );
                y += 30.0;
                continue;
            }
        };
        let _ = write!(
            rows,
            r#"<text class="time" x="12" y="{:.1}">#{} {}</text>"#,
            y + 12.0,
            a.packet,
            millis(a.time)
        );
        centred(
            &mut rows,
            "label",
            y,
            &format!("[{}] {}", a.flag_names(), a.numbers()),
            Some(colour(a)),
        );
        let arrow_y = y + 8.0;
        arrow(&mut rows, a, arrow_y);
        state_label(&mut rows, a.from, arrow_y, a.states_of(a.from));
        state_label(
            &mut rows,
            a.from.other(),
            arrow_y + SLOPE,
            a.states_of(a.from.other()),
        );
        let mut below = arrow_y + SLOPE + 18.0;
        if let Some(http) = &a.http {
            centred(&mut rows, "http", below, http, None);
            below += LINE;
        }
        if !a.options.is_empty() {
            centred(
                &mut rows,
                "opt",
                below,
                &format!("<{}>", a.options.join(", ")),
                None,
            );
            below += LINE;
        }
        for note in &a.notes {
            if all_bad_checksums && *note == Note::BadChecksum {
                continue;
            }
            centred(&mut rows, "note", below, &format!("⚠ {note}"), None);
            below += LINE;
        }
        // A little more air after a row with extra lines, so they stay with their arrow.
        y = below
            + if below > arrow_y + SLOPE + 18.0 {
                12.0
            } else {
                6.0
            };
    }
    let bottom = y + 4.0;
    // Lifelines under everything else.
    let _ = write!(
        out,
        r#"<line class="life" x1="{X_CLIENT}" y1="88" x2="{X_CLIENT}" y2="{bottom:.1}"/><line class="life" x1="{X_SERVER}" y1="88" x2="{X_SERVER}" y2="{bottom:.1}"/>"#
    );
    out.push_str(&rows);
    let mut end = bottom + 14.0;
    for (side, state) in [(Side::Client, c.last.0), (Side::Server, c.last.1)] {
        if state == State::TimeWait {
            let x = x_of(side);
            let _ = write!(
                out,
                r#"<text class="opt" x="{x:.1}" y="{end:.1}" text-anchor="middle">TIME-WAIT: 2·MSL later, CLOSED</text>"#
            );
        }
    }
    end += 22.0;
    (out, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagram::DiagramBuilder;
    use crate::tcp::{Flags, Segment, SeqNum};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn sample(extra_data_segments: usize) -> Diagram {
        let (c, s) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut b = DiagramBuilder::new();
        let mut n = 0;
        let mut send =
            |from_client: bool, syn: bool, ack: Option<u32>, fin: bool, seq: u32, data: &[u8]| {
                n += 1;
                let seg = Segment {
                    src_port: if from_client { 40000 } else { 80 },
                    dst_port: if from_client { 80 } else { 40000 },
                    seq: SeqNum(seq),
                    ack: SeqNum(ack.unwrap_or(0)),
                    flags: Flags {
                        syn,
                        ack: ack.is_some(),
                        fin,
                        ..Flags::default()
                    },
                    payload: data.to_vec(),
                    ..Segment::default()
                };
                let (src, dst) = if from_client { (c, s) } else { (s, c) };
                b.add_segment(
                    n,
                    Duration::from_micros(n as u64 * 250),
                    src,
                    dst,
                    &seg,
                    false,
                );
            };
        let get = b"GET /<script>&\"'x HTTP/1.1\r\n\r\n";
        let g = get.len() as u32;
        send(true, true, None, false, 0, &[]);
        send(false, true, Some(1), false, 100, &[]);
        send(true, false, Some(101), false, 1, &[]);
        send(true, false, Some(101), false, 1, get);
        let mut sseq = 101;
        for _ in 0..extra_data_segments {
            send(false, false, Some(1 + g), false, sseq, &[b'x'; 10]);
            sseq += 10;
        }
        send(
            false,
            false,
            Some(1 + g),
            false,
            sseq,
            b"HTTP/1.1 200 OK\r\n\r\n",
        );
        sseq += 19;
        send(
            false,
            false,
            Some(1 + g),
            false,
            sseq - 19,
            b"HTTP/1.1 200 OK\r\n\r\n",
        );
        send(true, false, Some(sseq), true, 1 + g, &[]);
        send(false, false, Some(2 + g), true, sseq, &[]);
        send(true, false, Some(sseq + 1), false, 2 + g, &[]);
        b.finish()
    }

    #[test]
    fn svg_has_the_arrows_states_and_escaped_text() {
        let svg = render_svg(&sample(0), &Options::default());
        assert!(svg.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns="));
        assert!(svg.trim_end().ends_with("</svg>"));
        for needle in [
            ">[SYN] seq=0 win=0 len=0<",
            ">[SYN, ACK] seq=0 ack=1 win=0 len=0<",
            ">[FIN, ACK] ",
            ">SYN-SENT<",
            ">SYN-RECEIVED<",
            ">ESTABLISHED<",
            ">FIN-WAIT-1<",
            ">CLOSE-WAIT → LAST-ACK<",
            ">TIME-WAIT<",
            ">HTTP/1.1 200 OK<",
            "⚠ retransmission",
            "GET /&lt;script&gt;&amp;&quot;&#39;x HTTP/1.1",
            "stroke-dasharray",
        ] {
            assert!(svg.contains(needle), "missing {needle:?} in\n{svg}");
        }
        assert!(!svg.contains("<script>"));
        assert!(
            !svg.contains("http://") || svg.matches("http://").count() == 1,
            "only the xmlns"
        );
    }

    #[test]
    fn long_connections_are_cut_but_keep_state_changes() {
        let d = sample(500);
        let all = d.connections[0].arrows.len();
        let svg = render_svg(&d, &Options { max_arrows: 20 });
        assert!(svg.contains("segments not drawn"), "{svg}");
        let drawn = svg.matches("<polygon").count();
        assert!((20..40).contains(&drawn), "{drawn} of {all} drawn");
        for state in ["ESTABLISHED", "FIN-WAIT-1", "TIME-WAIT", "CLOSED"] {
            assert!(svg.contains(state), "{state} missing");
        }
        // Every arrow is either drawn or counted.
        let counted: usize = selection(&d.connections[0], 20)
            .iter()
            .map(|s| match s {
                Ok(_) => 1,
                Err(n) => *n,
            })
            .sum();
        assert_eq!(counted, all);
    }

    #[test]
    fn html_page_lists_every_connection() {
        let mut d = sample(1);
        let mut second = d.connections[0].clone();
        second.number = 2;
        d.connections.push(second);
        let html = render_html(&d, &Options::default(), "capture <t.pcap>");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>capture &lt;t.pcap&gt;</title>"));
        assert_eq!(html.matches("<svg xmlns").count(), 2);
        assert!(html.contains("href=\"#c2\""));
        let empty = render_html(&Diagram::default(), &Options::default(), "x");
        assert!(empty.contains("No TCP connection"));
        let svg = render_svg(&Diagram::default(), &Options::default());
        assert!(svg.contains("No TCP connection"));
    }

    #[test]
    fn checksums_bad_everywhere_are_said_once() {
        let mut d = sample(0);
        for a in &mut d.connections[0].arrows {
            a.notes.push(Note::BadChecksum);
        }
        let svg = render_svg(&d, &Options::default());
        assert!(svg.contains("checksums offloaded"));
        assert!(!svg.contains("bad checksum"));
        d.connections[0].arrows[0].notes.clear();
        let svg = render_svg(&d, &Options::default());
        assert!(!svg.contains("checksums offloaded"));
        assert!(svg.contains("bad checksum (offloaded?)"));
    }

    #[test]
    fn escape_handles_markup_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"'\u{1}c"),
            "a&lt;b&gt;&amp;&quot;&#39;\u{fffd}c"
        );
    }
}
