//! Step mode (`serve --step`): walk one packet at a time through the layers, as in a
//! debugger. Before a packet is processed, and each time a layer hands it up (link → ip →
//! tcp → socket → HTTP handler) or down again (tcp → ip → link), the stepper shows what
//! that layer sees and what it will do, and waits:
//!
//! ```text
//! #1   ← in   +2.018s
//! step link   │ 60 bytes from the TUN  ⇒ the device read a packet; hands it up to ip
//!   [Enter] next step  [n] next packet  [c] continue  [q] run quietly  step>
//! step ip     │ 10.0.0.1 → 10.0.0.2  ttl 64  id 0  DF  checksum ok  proto tcp  ⇒ ...
//! ```
//!
//! `Enter` takes one step, `n` runs to the next packet, `c` stops pausing but keeps
//! printing the trace, `q` stops both and just serves. End of input behaves like `c`.
//!
//! The stepper is only a [`super::Tracer`] sink that blocks: the stack emits its events
//! outside its lock, so while one thread waits here the others that need nothing from it
//! go on; packets that arrive meanwhile queue up (and the peer may retransmit: a paused
//! stack *is* a slow network, and the trace shows the consequences).

use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::time::Instant;

use super::render::{event_code, layer_code, Code, Emphasis, Layer, LayerLine, Palette, Renderer};
use super::{Direction, TraceEvent, Tracer};

/// The prompt that ends every pause (tests look for it).
pub const PROMPT: &str = "step> ";

/// What the user typed at a pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepCommand {
    /// Enter: one more step.
    Next,
    /// `n`: run until the next packet arrives or leaves.
    NextPacket,
    /// `c`: stop pausing, keep printing the trace.
    Continue,
    /// `q`: stop pausing and printing; just run.
    Quit,
}

impl StepCommand {
    /// Parse one input line (surrounding white space ignored; unknown input is a step).
    pub fn parse(line: &str) -> StepCommand {
        match line.trim() {
            "n" | "next" => StepCommand::NextPacket,
            "c" | "continue" => StepCommand::Continue,
            "q" | "quit" => StepCommand::Quit,
            _ => StepCommand::Next,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Step,
    ToNextPacket,
    Run,
    Quiet,
}

struct Inner {
    renderer: Renderer,
    palette: Palette,
    mode: Mode,
    input: Box<dyn BufRead + Send>,
    output: Box<dyn Write + Send>,
    start: Instant,
}

/// A blocking trace sink that pauses layer by layer (see the module doc).
pub struct Stepper {
    inner: Mutex<Inner>,
}

impl Stepper {
    /// A stepper reading commands from `input` and writing to `output`.
    pub fn new(
        input: Box<dyn BufRead + Send>,
        output: Box<dyn Write + Send>,
        palette: Palette,
    ) -> Stepper {
        Stepper {
            inner: Mutex::new(Inner {
                renderer: Renderer::new(),
                palette,
                mode: Mode::Step,
                input,
                output,
                start: Instant::now(),
            }),
        }
    }

    /// Stepping on the terminal: commands from stdin, output to stderr.
    pub fn terminal() -> Stepper {
        Stepper::new(
            Box::new(std::io::BufReader::new(std::io::stdin())),
            Box::new(std::io::stderr()),
            Palette::for_stderr(),
        )
    }

    /// The stepper as a [`Tracer`].
    pub fn into_tracer(self) -> Tracer {
        Tracer::new(move |ev| self.handle(&ev))
    }

    /// Show `event` and pause where a layer hands over.
    pub fn handle(&self, event: &TraceEvent) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.handle(event);
    }
}

impl Inner {
    fn handle(&mut self, event: &TraceEvent) {
        if self.mode == Mode::Quiet {
            return;
        }
        match event {
            TraceEvent::Packet { dir, bytes } | TraceEvent::Frame { dir, bytes } => {
                if self.mode == Mode::ToNextPacket {
                    self.mode = Mode::Step;
                }
                let (n, lines) = match event {
                    TraceEvent::Frame { .. } => self.renderer.frame(*dir, bytes),
                    _ => self.renderer.packet(*dir, bytes),
                };
                let arrow = match dir {
                    Direction::In => "← in ",
                    Direction::Out => "→ out",
                };
                let mut head = format!(
                    "#{n:<3} {arrow}  +{:.3}s",
                    self.start.elapsed().as_secs_f64()
                );
                // Which queue's loop (or the stack thread) handles it.
                if let Some(t) = std::thread::current().name() {
                    head.push_str("  [");
                    head.push_str(t);
                    head.push(']');
                }
                let head = self.palette.paint("1", &head);
                self.say(&head);
                for (layer, text) in steps(*dir, &lines) {
                    if self.mode == Mode::Quiet {
                        break;
                    }
                    self.step(layer, &text, layer_code(*dir, layer));
                }
            }
            other => {
                let Some((layer, text, emphasis)) = self.renderer.event(other) else {
                    return;
                };
                // Routine bookkeeping is shown but not worth a pause.
                let pause = match other {
                    TraceEvent::Tcp(_) => emphasis != Emphasis::Normal,
                    // The wire segments that follow are the steps.
                    TraceEvent::SuperSegment { .. } => false,
                    _ => true,
                };
                let text = match emphasis {
                    Emphasis::State => self.palette.paint("1;36", &text),
                    Emphasis::Alarm => self.palette.paint("31", &text),
                    Emphasis::Normal => text,
                };
                let text = match other {
                    TraceEvent::Http(super::HttpEvent::Request { .. }) => {
                        format!("{text}  ⇒ the HTTP handler runs now")
                    }
                    _ => text,
                };
                let code = event_code(other);
                if pause {
                    self.step(layer, &text, code);
                } else {
                    let line = self.line(layer, &text, code);
                    self.say(&line);
                }
            }
        }
    }

    /// A step's line and, under it, the code that does that step (dim):
    ///
    /// ```text
    /// step tcp    │ 59964 → 80  [S]  seq 0 …  ⇒ finds the connection; …
    ///             │ @ src/tcp/endpoint.rs Tcp::on_segment
    /// ```
    fn line(&self, layer: Layer, text: &str, code: Option<Code>) -> String {
        let label = format!("step {:<7}", layer.label());
        let mut line = format!("{}│ {text}", self.palette.paint("1", &label));
        if let Some(code) = code {
            line.push('\n');
            line.push_str(&" ".repeat(label.chars().count()));
            line.push_str("│ ");
            line.push_str(&self.palette.paint("2", &format!("@ {code}")));
        }
        line
    }

    fn say(&mut self, line: &str) {
        let _ = writeln!(self.output, "{line}");
        let _ = self.output.flush();
    }

    /// Print one layer's view and, in step mode, wait for a command.
    fn step(&mut self, layer: Layer, text: &str, code: Option<Code>) {
        let line = self.line(layer, text, code);
        self.say(&line);
        if self.mode != Mode::Step {
            return;
        }
        let _ = write!(
            self.output,
            "  [Enter] next step  [n] next packet  [c] continue  [q] run quietly  {PROMPT}"
        );
        let _ = self.output.flush();
        let mut answer = String::new();
        let command = match self.input.read_line(&mut answer) {
            Ok(0) | Err(_) => StepCommand::Continue,
            Ok(_) => StepCommand::parse(&answer),
        };
        self.mode = match command {
            StepCommand::Next => Mode::Step,
            StepCommand::NextPacket => Mode::ToNextPacket,
            StepCommand::Continue => Mode::Run,
            StepCommand::Quit => Mode::Quiet,
        };
    }
}

/// The pauses of one packet: bottom-up for a packet coming in, top-down for one going
/// out, each layer's view plus what it does with the packet next.
fn steps(dir: Direction, lines: &[LayerLine]) -> Vec<(Layer, String)> {
    let find = |layer: Layer| lines.iter().find(|l| l.layer == layer).map(|l| &l.text);
    // TAP mode: an ARP frame has a second link line (the ARP message); show it with the
    // first.
    let link_text = lines
        .iter()
        .filter(|l| l.layer == Layer::Link)
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("  ·  ");
    let link_line = (!link_text.is_empty()).then_some(&link_text);
    let data = find(Layer::Data)
        .map(|d| format!("  +data {d}"))
        .unwrap_or_default();
    let mut out = Vec::with_capacity(3);
    match dir {
        Direction::In => {
            if let Some(t) = link_line {
                out.push((
                    Layer::Link,
                    format!("{t}  ⇒ the device read a packet; hands it up to ip"),
                ));
            }
            if let Some(t) = find(Layer::Ip) {
                let next = if find(Layer::Tcp).is_some() {
                    "checks it is for us; hands the payload up to tcp"
                } else if find(Layer::Icmp).is_some() {
                    "checks it is for us; hands the payload to icmp"
                } else if find(Layer::Udp).is_some() {
                    "checks it is for us; hands the payload up to udp"
                } else {
                    "drops it"
                };
                out.push((Layer::Ip, format!("{t}  ⇒ {next}")));
            }
            if let Some(t) = find(Layer::Tcp) {
                out.push((
                    Layer::Tcp,
                    format!("{t}{data}  ⇒ finds the connection; the state machine processes it (RFC 9293 §3.10.7)"),
                ));
            }
            if let Some(t) = find(Layer::Icmp) {
                let next = if t.starts_with("echo request") {
                    "answered with an echo reply"
                } else if t.starts_with("echo") {
                    "nothing to do: we send no echo requests"
                } else {
                    "an error: handed to the connection or socket of the datagram it quotes \
                     (RFC 1122 §4.2.3.9)"
                };
                out.push((Layer::Icmp, format!("{t}  ⇒ {next}")));
            }
            if let Some(t) = find(Layer::Udp) {
                out.push((
                    Layer::Udp,
                    format!("{t}  ⇒ queued on the bound socket, or ICMP port unreachable (RFC 1122 §4.1.3.1)"),
                ));
            }
        }
        Direction::Out => {
            if let Some(t) = find(Layer::Tcp) {
                out.push((
                    Layer::Tcp,
                    format!("{t}{data}  ⇒ the segment to send; hands it down to ip"),
                ));
            }
            if let Some(t) = find(Layer::Icmp) {
                out.push((Layer::Icmp, format!("{t}  ⇒ hands it down to ip")));
            }
            if let Some(t) = find(Layer::Udp) {
                out.push((Layer::Udp, format!("{t}  ⇒ hands it down to ip")));
            }
            if let Some(t) = find(Layer::Ip) {
                out.push((
                    Layer::Ip,
                    format!("{t}  ⇒ wraps it in an IPv4 header; hands it down to the link"),
                ));
            }
            if let Some(t) = link_line {
                out.push((
                    Layer::Link,
                    format!("{t}  ⇒ written to the device; the kernel delivers it to the client"),
                ));
            }
        }
    }
    out
}
