//! Tokens of the packetdrill language: numbers, names, punctuation, and the raw text of
//! backtick shell lines and `%{ ... }%` code blocks. Comments (`//`, `/* */`) are dropped.

/// One token and the line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// What it is.
    pub tok: Tok,
    /// 1-based line of the script.
    pub line: usize,
}

/// The kinds of token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// A number as written: `0`, `.1`, `1.25`, `0xffff`.
    Num(String),
    /// A name: `socket`, `SOL_SOCKET`, `S`, `ack`.
    Ident(String),
    /// A double-quoted string.
    Str(String),
    /// `...`
    Ellipsis,
    /// The text between backticks.
    Shell(String),
    /// The text between `%{` and `}%`.
    Code(String),
    /// Any other single character.
    Punct(char),
}

/// Split `text` into tokens; an unterminated comment, string or block is an error.
pub fn lex(text: &str) -> Result<Vec<Token>, (usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    // Consume characters up to (not including) `end`, counting lines.
    let until = |i: &mut usize, line: &mut usize, end: &str| -> Option<String> {
        let end: Vec<char> = end.chars().collect();
        let mut s = String::new();
        while *i < chars.len() {
            if chars[*i..].starts_with(&end) {
                *i += end.len();
                return Some(s);
            }
            if chars[*i] == '\n' {
                *line += 1;
            }
            s.push(chars[*i]);
            *i += 1;
        }
        None
    };
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            until(&mut i, &mut line, "*/").ok_or((start_line, "unterminated /* comment".into()))?;
        } else if c == '`' {
            i += 1;
            let s = until(&mut i, &mut line, "`")
                .ok_or((start_line, "unterminated backtick command".into()))?;
            out.push(Token {
                tok: Tok::Shell(s),
                line: start_line,
            });
        } else if c == '%' && next == Some('{') {
            i += 2;
            let s = until(&mut i, &mut line, "}%")
                .ok_or((start_line, "unterminated %{ code block".into()))?;
            out.push(Token {
                tok: Tok::Code(s),
                line: start_line,
            });
        } else if c == '"' {
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err((start_line, "unterminated string".into())),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        if let Some(&e) = chars.get(i + 1) {
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                '0' => '\0',
                                other => other,
                            });
                        }
                        i += 2;
                    }
                    Some(&ch) => {
                        if ch == '\n' {
                            line += 1;
                        }
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Token {
                tok: Tok::Str(s),
                line: start_line,
            });
        } else if c == '.' && next == Some('.') && chars.get(i + 2) == Some(&'.') {
            i += 3;
            out.push(Token {
                tok: Tok::Ellipsis,
                line,
            });
        } else if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) {
            let mut s = String::new();
            if c == '0' && matches!(next, Some('x') | Some('X')) {
                s.push_str("0x");
                i += 2;
                while i < chars.len() && chars[i].is_ascii_hexdigit() {
                    s.push(chars[i]);
                    i += 1;
                }
            } else {
                while i < chars.len() && chars[i].is_ascii_digit() {
                    s.push(chars[i]);
                    i += 1;
                }
                // A fraction only when a digit follows the dot: `1...2` is 1, `...`, 2.
                if chars.get(i) == Some(&'.')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                {
                    s.push('.');
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        s.push(chars[i]);
                        i += 1;
                    }
                }
            }
            out.push(Token {
                tok: Tok::Num(s),
                line,
            });
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut s = String::new();
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                s.push(chars[i]);
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(s),
                line,
            });
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_dots_and_ranges() {
        assert_eq!(
            kinds("+.1 S. 1:1(0) 0...0.200"),
            vec![
                Tok::Punct('+'),
                Tok::Num(".1".into()),
                Tok::Ident("S".into()),
                Tok::Punct('.'),
                Tok::Num("1".into()),
                Tok::Punct(':'),
                Tok::Num("1".into()),
                Tok::Punct('('),
                Tok::Num("0".into()),
                Tok::Punct(')'),
                Tok::Num("0".into()),
                Tok::Ellipsis,
                Tok::Num("0.200".into()),
            ]
        );
    }

    #[test]
    fn comments_shell_and_code_blocks() {
        let t = lex("// c\n/* a\nb */ `x\ny` %{ a }% 0x1f").unwrap();
        assert_eq!(t[0].tok, Tok::Shell("x\ny".into()));
        assert_eq!(t[0].line, 3);
        assert_eq!(t[1].tok, Tok::Code(" a ".into()));
        assert_eq!(t[2].tok, Tok::Num("0x1f".into()));
        assert_eq!(t[2].line, 4);
        assert!(lex("/* open").is_err());
    }
}
