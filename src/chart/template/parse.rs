//! The parser of Go's text/template syntax, for the subset listed in docs/provisioning.md:
//! text, actions with `{{-`/`-}}` trimming, comments, pipelines, variables, `if`/`else if`/
//! `else`, `with`/`else with`, `range` (with `else`, `break`, `continue`), `define`, `template`,
//! `block`. A function outside the supported set is refused here, naming it and its line.

use std::collections::BTreeMap;

use serde_json::Value;

use super::TemplateError;
use super::funcs;

/// A parsed template: its body and the templates it defines.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub body: Vec<Node>,
    pub defines: BTreeMap<String, Vec<Node>>,
}

#[derive(Clone, Debug)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If { branches: Vec<(Pipe, Vec<Node>)>, otherwise: Option<Vec<Node>> },
    With { branches: Vec<(Pipe, Vec<Node>)>, otherwise: Option<Vec<Node>> },
    Range { pipe: Pipe, body: Vec<Node>, otherwise: Option<Vec<Node>> },
    Template { name: String, pipe: Option<Pipe>, line: usize },
    Break,
    Continue,
}

/// `$a, $b := cmd | cmd`.
#[derive(Clone, Debug)]
pub struct Pipe {
    pub line: usize,
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Vec<Arg>>,
}

#[derive(Clone, Debug)]
pub enum Arg {
    /// `.`
    Dot,
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the name `$`).
    Variable(String, Vec<String>),
    /// A function name.
    Func(String),
    /// A literal.
    Literal(Value),
    /// `(pipeline).A.B`
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Text(String),
    /// An action's inside, and the line it starts on.
    Action(String, usize),
}

/// Splits the source into text and action insides, applying the trim markers and dropping
/// comments.
fn split(src: &str, file: &str) -> Result<Vec<Token>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_left = after.starts_with("- ")
            || after.starts_with("-\t")
            || after.starts_with("-\n")
            || after.starts_with("-\r");
        if trim_left {
            text = text.trim_end();
        }
        line += rest[..start].matches('\n').count();
        if !text.is_empty() {
            out.push(Token::Text(text.to_string()));
        }
        let inner_start = if trim_left { 2 } else { 0 };
        let inner = &after[inner_start..];
        let (body, consumed, trim_right) = action_end(inner).ok_or_else(|| {
            TemplateError::at(file, line, "an action opened with {{ is never closed with }}")
        })?;
        let body_line = line;
        line += inner[..consumed].matches('\n').count();
        rest = &inner[consumed..];
        trim_next = trim_right;
        let trimmed = body.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err(TemplateError::at(file, body_line, "a comment must end with */ }}"));
            }
            continue;
        }
        out.push(Token::Action(body.to_string(), body_line));
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        out.push(Token::Text(text.to_string()));
    }
    Ok(out)
}

/// Finds the end of an action (`}}` outside quotes and comments): its body, the bytes it
/// used including the delimiter, and whether it ends with ` -}}`.
fn action_end(s: &str) -> Option<(&str, usize, bool)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = s[i + 2..].find("*/")?;
                i += 2 + end + 1;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                let body = &s[..i];
                let trim = body.ends_with(" -")
                    || body.ends_with("\t-")
                    || body.ends_with("\n-")
                    || body.ends_with("\r-");
                let body = if trim { &body[..body.len() - 1] } else { body };
                return Some((body, i + 2, trim));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Clone, Debug, PartialEq)]
enum Lex {
    Dot,
    Field(String),
    /// A field that touches the operand before it (`$x.a`, `.a.b`, `(...).a`).
    Chain(String),
    Var(String),
    Ident(String),
    Str(String),
    Num(Value),
    Char(i64),
    Pipe,
    Open,
    Close,
    Declare,
    Assign,
    Comma,
}

/// Tokenises an action's inside.
fn lex(src: &str, file: &str, line: usize) -> Result<Vec<Lex>, TemplateError> {
    let err = |m: String| TemplateError::at(file, line, m);
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '|' => {
                out.push(Lex::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Lex::Open);
                i += 1;
            }
            ')' => {
                out.push(Lex::Close);
                i += 1;
            }
            ',' => {
                out.push(Lex::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Lex::Declare);
                i += 2;
            }
            '=' => {
                out.push(Lex::Assign);
                i += 1;
            }
            '.' if chars.get(i + 1).is_some_and(|c| ident_char(*c) && !c.is_ascii_digit()) => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                let touches = start >= 2
                    && !chars[start - 2].is_whitespace()
                    && matches!(
                        out.last(),
                        Some(Lex::Field(_) | Lex::Chain(_) | Lex::Var(_) | Lex::Close)
                    );
                out.push(if touches { Lex::Chain(name) } else { Lex::Field(name) });
            }
            '.' if !chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                out.push(Lex::Dot);
                i += 1;
            }
            '$' => {
                let start = i;
                i += 1;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                out.push(Lex::Var(chars[start..i].iter().collect()));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(err("a string is never closed".into()));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(i).copied().unwrap_or('\\');
                            i += 1;
                            match e {
                                'n' => s.push('\n'),
                                't' => s.push('\t'),
                                'r' => s.push('\r'),
                                '\\' => s.push('\\'),
                                '"' => s.push('"'),
                                '\'' => s.push('\''),
                                '0' => s.push('\0'),
                                'u' | 'x' => {
                                    let len = if e == 'u' { 4 } else { 2 };
                                    let hex: String = chars.iter().skip(i).take(len).collect();
                                    i += len;
                                    let code = u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .and_then(char::from_u32)
                                        .ok_or_else(|| err(format!("bad escape \\{e}{hex}")))?;
                                    s.push(code);
                                }
                                other => return Err(err(format!("unknown escape \\{other}"))),
                            }
                        }
                        c => s.push(c),
                    }
                }
                out.push(Lex::Str(s));
            }
            '`' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(err("a raw string is never closed".into()));
                }
                out.push(Lex::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            '\'' => {
                let c = chars.get(i + 1).copied().ok_or_else(|| err("bad character".into()))?;
                if chars.get(i + 2) != Some(&'\'') {
                    return Err(err("a character constant holds one character".into()));
                }
                out.push(Lex::Char(i64::from(u32::from(c))));
                i += 3;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && i + 1 < chars.len()
                    && chars[i + 1].is_ascii_digit()) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
                out.push(Lex::Num(number(&text).ok_or_else(|| err(format!("bad number {text}")))?));
            }
            c if ident_char(c) => {
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                out.push(Lex::Ident(chars[start..i].iter().collect()));
                // A field chain after an identifier is only valid after a parenthesis or a
                // variable; Go refuses it too.
            }
            other => return Err(err(format!("unexpected {other:?} in an action"))),
        }
    }
    Ok(out)
}

fn number(text: &str) -> Option<Value> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let radix = |prefix: &str, radix: u32| {
        body.strip_prefix(prefix).and_then(|digits| i64::from_str_radix(digits, radix).ok())
    };
    let int = radix("0x", 16)
        .or_else(|| radix("0X", 16))
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
        .or_else(|| body.parse::<i64>().ok());
    if let Some(n) = int {
        return Some(Value::from(if neg { -n } else { n }));
    }
    let f: f64 = body.parse().ok()?;
    serde_json::Number::from_f64(if neg { -f } else { f }).map(Value::Number)
}

/// Parses a whole template file.
pub fn parse(src: &str, file: &str) -> Result<Parsed, TemplateError> {
    let tokens = split(src, file)?;
    let mut parser = Parser { tokens, pos: 0, file, defines: BTreeMap::new() };
    let (body, end) = parser.list()?;
    if let Some((word, line)) = end {
        return Err(TemplateError::at(file, line, format!("unexpected {{{{{word}}}}}")));
    }
    Ok(Parsed { body, defines: parser.defines })
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    file: &'a str,
    defines: BTreeMap<String, Vec<Node>>,
}

/// An `if` or `with`: its conditions and bodies, and its `else` body.
type Branches = (Vec<(Pipe, Vec<Node>)>, Option<Vec<Node>>);

/// What ended a list of nodes: `end`, `else ...` (with the rest of the action), and its line.
type Ending = Option<(String, usize)>;

impl Parser<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> TemplateError {
        TemplateError::at(self.file, line, message)
    }

    /// Nodes up to an `end` or `else` (returned) or the end of input (None).
    fn list(&mut self) -> Result<(Vec<Node>, Ending), TemplateError> {
        let mut nodes = Vec::new();
        while self.pos < self.tokens.len() {
            let token = self.tokens[self.pos].clone();
            self.pos += 1;
            let (body, line) = match token {
                Token::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Token::Action(body, line) => (body, line),
            };
            let body = body.trim();
            let (word, rest) = match body.find(|c: char| c.is_whitespace()) {
                Some(i) => (&body[..i], body[i..].trim()),
                None => (body, ""),
            };
            match word {
                "end" => return Ok((nodes, Some(("end".into(), line)))),
                "else" => return Ok((nodes, Some((format!("else {rest}"), line)))),
                "if" | "with" => {
                    let (branches, otherwise) = self.branches(word, rest, line)?;
                    nodes.push(if word == "if" {
                        Node::If { branches, otherwise }
                    } else {
                        Node::With { branches, otherwise }
                    });
                }
                "range" => {
                    let pipe = self.pipe(rest, line, true)?;
                    let (body, end) = self.list()?;
                    let otherwise = match end {
                        Some((e, _)) if e == "end" => None,
                        Some((e, l)) if e.trim() == "else" => {
                            let (other, end) = self.list()?;
                            self.expect_end(end, l)?;
                            Some(other)
                        }
                        Some((_, l)) => return Err(self.err(l, "unexpected else in range")),
                        None => return Err(self.err(line, "range has no {{end}}")),
                    };
                    nodes.push(Node::Range { pipe, body, otherwise });
                }
                "define" | "block" => {
                    let (name, rest) = self.template_name(rest, line)?;
                    let (body, end) = self.list()?;
                    self.expect_end(end, line)?;
                    if word == "block" {
                        let pipe = self.optional_pipe(rest, line)?;
                        nodes.push(Node::Template { name: name.clone(), pipe, line });
                        self.defines.entry(name).or_insert(body);
                    } else {
                        if !rest.is_empty() {
                            return Err(self.err(line, "define takes only a name"));
                        }
                        self.defines.insert(name, body);
                    }
                }
                "template" => {
                    let (name, rest) = self.template_name(rest, line)?;
                    let pipe = self.optional_pipe(rest, line)?;
                    nodes.push(Node::Template { name, pipe, line });
                }
                "break" => nodes.push(Node::Break),
                "continue" => nodes.push(Node::Continue),
                _ => nodes.push(Node::Action(self.pipe(body, line, false)?)),
            }
        }
        Ok((nodes, None))
    }

    fn expect_end(&self, end: Ending, line: usize) -> Result<(), TemplateError> {
        match end {
            Some((e, _)) if e == "end" => Ok(()),
            Some((_, l)) => Err(self.err(l, "unexpected else")),
            None => Err(self.err(line, "a block has no {{end}}")),
        }
    }

    fn branches(&mut self, word: &str, rest: &str, line: usize) -> Result<Branches, TemplateError> {
        let mut branches = Vec::new();
        let mut pipe = self.pipe(rest, line, false)?;
        loop {
            let (body, end) = self.list()?;
            branches.push((pipe, body));
            match end {
                Some((e, _)) if e == "end" => return Ok((branches, None)),
                Some((e, l)) => {
                    let after = e.trim_start_matches("else").trim();
                    if after.is_empty() {
                        let (other, end) = self.list()?;
                        self.expect_end(end, l)?;
                        return Ok((branches, Some(other)));
                    }
                    let chained = after
                        .strip_prefix(word)
                        .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace))
                        .ok_or_else(|| self.err(l, format!("else {after} inside {word}")))?;
                    pipe = self.pipe(chained.trim(), l, false)?;
                }
                None => return Err(self.err(line, format!("{word} has no {{{{end}}}}"))),
            }
        }
    }

    fn template_name<'s>(
        &self,
        rest: &'s str,
        line: usize,
    ) -> Result<(String, &'s str), TemplateError> {
        let tokens = lex(rest, self.file, line)?;
        match tokens.first() {
            Some(Lex::Str(name)) => {
                // The name is the first token; what follows is the pipeline.
                let quote = rest.chars().next().unwrap_or('"');
                let end = rest[1..].find(quote).map_or(rest.len(), |i| i + 2);
                Ok((name.clone(), rest[end..].trim()))
            }
            _ => Err(self.err(line, "a template name must be a quoted string")),
        }
    }

    fn optional_pipe(&self, rest: &str, line: usize) -> Result<Option<Pipe>, TemplateError> {
        if rest.is_empty() { Ok(None) } else { self.pipe(rest, line, false).map(Some) }
    }

    fn pipe(&self, src: &str, line: usize, in_range: bool) -> Result<Pipe, TemplateError> {
        let tokens = lex(src, self.file, line)?;
        let mut pos = 0;
        let pipe = self.pipe_tokens(&tokens, &mut pos, line, in_range)?;
        if pos < tokens.len() {
            return Err(self.err(line, format!("unexpected {:?} in an action", tokens[pos])));
        }
        Ok(pipe)
    }

    fn pipe_tokens(
        &self,
        tokens: &[Lex],
        pos: &mut usize,
        line: usize,
        in_range: bool,
    ) -> Result<Pipe, TemplateError> {
        let mut decl = Vec::new();
        let mut assign = false;
        // A declaration: `$x :=`, `$x =`, or in a range `$i, $v :=`.
        let mut look = *pos;
        let mut names = Vec::new();
        while let Some(Lex::Var(name)) = tokens.get(look) {
            names.push(name.clone());
            look += 1;
            match tokens.get(look) {
                Some(Lex::Comma) if in_range && names.len() < 2 => look += 1,
                Some(Lex::Declare) => {
                    decl = names.clone();
                    *pos = look + 1;
                    break;
                }
                Some(Lex::Assign) => {
                    decl = names.clone();
                    assign = true;
                    *pos = look + 1;
                    break;
                }
                _ => break,
            }
        }
        let mut cmds = Vec::new();
        loop {
            let mut cmd = Vec::new();
            while let Some(token) = tokens.get(*pos) {
                match token {
                    Lex::Pipe | Lex::Close => break,
                    _ => cmd.push(self.operand(tokens, pos, line)?),
                }
            }
            if cmd.is_empty() {
                return Err(self.err(line, "missing value in a pipeline"));
            }
            cmds.push(cmd);
            match tokens.get(*pos) {
                Some(Lex::Pipe) => *pos += 1,
                _ => break,
            }
        }
        Ok(Pipe { line, decl, assign, cmds })
    }

    fn operand(&self, tokens: &[Lex], pos: &mut usize, line: usize) -> Result<Arg, TemplateError> {
        let token = tokens[*pos].clone();
        *pos += 1;
        let arg = match token {
            Lex::Dot => Arg::Dot,
            Lex::Field(name) => {
                let mut chain = vec![name];
                chain.extend(fields(tokens, pos));
                Arg::Field(chain)
            }
            Lex::Var(name) => Arg::Variable(name, fields(tokens, pos)),
            Lex::Str(s) => Arg::Literal(Value::String(s)),
            Lex::Num(n) => Arg::Literal(n),
            Lex::Char(c) => Arg::Literal(Value::from(c)),
            Lex::Ident(word) => match word.as_str() {
                "true" => Arg::Literal(Value::Bool(true)),
                "false" => Arg::Literal(Value::Bool(false)),
                "nil" => Arg::Literal(Value::Null),
                name if funcs::is_supported(name) => Arg::Func(word),
                name => return Err(self.err(line, funcs::unsupported(name))),
            },
            Lex::Open => {
                let inner = self.pipe_tokens(tokens, pos, line, false)?;
                if tokens.get(*pos) != Some(&Lex::Close) {
                    return Err(self.err(line, "unclosed parenthesis"));
                }
                *pos += 1;
                Arg::Sub(Box::new(inner), fields(tokens, pos))
            }
            other => return Err(self.err(line, format!("unexpected {other:?} in an action"))),
        };
        Ok(arg)
    }
}

/// A field chain right after an operand (`$x.a.b`, `(...).a`): only tokens that touch it.
fn fields(tokens: &[Lex], pos: &mut usize) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(Lex::Chain(name)) = tokens.get(*pos) {
        out.push(name.clone());
        *pos += 1;
    }
    out
}
