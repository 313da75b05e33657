//! A small, honest subset of CEL for `x-kubernetes-validations` rules: literals, `self` and
//! `oldSelf`, field selection, indexing, `has()`, `size()`, the string functions
//! `startsWith` / `endsWith` / `contains` / `matches` / `lowerAscii` / `upperAscii`, `int()`
//! / `double()` / `string()`, the macros `all` / `exists` / `exists_one`, list and map
//! literals, `in`, arithmetic, comparisons, `!` / `&&` / `||` and `?:`.
//!
//! A rule outside the subset (another function, macro or syntax) is not enforced: the fake
//! accepts the CRD (the real server may refuse it) and says so once on stderr. A rule that
//! fails with a type error at run time, which the real compiler would have caught, is
//! likewise skipped. Transition rules (those naming `oldSelf`) run on updates only, where
//! the old object has a value at the same place; list items have no `oldSelf`. Other rules
//! skip values an update leaves unchanged (validation ratcheting).
//! Failure messages follow Kubernetes v1.36: `Invalid value: <message>` (or `Forbidden:` /
//! `Required value:` per the rule's `reason`), `failed rule: <rule>` without a message, and
//! `Invalid value: "object": no such key: x evaluating rule: <message>` for a missing field.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::status::FieldError;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Int(i64),
    Double(f64),
    Str(String),
    Ident(String),
    Punct(&'static str),
}

const PUNCT: [&str; 24] = [
    "<=", ">=", "==", "!=", "&&", "||", "(", ")", "[", "]", "{", "}", ".", ",", "?", ":", "!", "-",
    "+", "*", "/", "%", "<", ">",
];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                if chars[i] == '.' && !chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                    break;
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            if text.contains('.') {
                out.push(Tok::Double(text.parse().map_err(|_| format!("bad number {text}"))?));
            } else {
                out.push(Tok::Int(text.parse().map_err(|_| format!("bad number {text}"))?));
            }
            if chars.get(i) == Some(&'u') {
                i += 1;
            }
        } else if c == '"' || c == '\'' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else { return Err("unterminated string".into()) };
                i += 1;
                match ch {
                    '\\' => {
                        let esc = chars.get(i).copied().ok_or("unterminated string")?;
                        i += 1;
                        s.push(match esc {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                    }
                    ch if ch == quote => break,
                    ch => s.push(ch),
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let p = PUNCT
                .iter()
                .find(|p| rest.starts_with(**p))
                .ok_or_else(|| format!("unexpected character {c:?}"))?;
            i += p.len();
            out.push(Tok::Punct(p));
        }
    }
    Ok(out)
}

/// A parsed rule expression.
#[derive(Clone, Debug)]
pub enum Expr {
    Lit(Value),
    Ident(String),
    Select(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call(Option<Box<Expr>>, String, Vec<Expr>),
    Unary(&'static str, Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    MapLit(Vec<(Expr, Expr)>),
}

const GLOBALS: [&str; 5] = ["has", "size", "int", "double", "string"];
const METHODS: [&str; 10] = [
    "size",
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "lowerAscii",
    "upperAscii",
    "all",
    "exists",
    "exists_one",
];

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.eat(p) { Ok(()) } else { Err(format!("expected {p}")) }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let c = self.or()?;
        if self.eat("?") {
            let a = self.expr()?;
            self.expect(":")?;
            let b = self.expr()?;
            return Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)));
        }
        Ok(c)
    }

    fn binary(
        &mut self,
        ops: &[&'static str],
        next: fn(&mut Self) -> Result<Expr, String>,
    ) -> Result<Expr, String> {
        let mut left = next(self)?;
        loop {
            let op = match self.peek() {
                Some(Tok::Punct(p)) => ops.iter().find(|o| *o == p).copied(),
                Some(Tok::Ident(w)) if w == "in" && ops.contains(&"in") => Some("in"),
                _ => None,
            };
            let Some(op) = op else { return Ok(left) };
            self.pos += 1;
            let right = next(self)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        self.binary(&["||"], Self::and)
    }

    fn and(&mut self) -> Result<Expr, String> {
        self.binary(&["&&"], Self::rel)
    }

    fn rel(&mut self) -> Result<Expr, String> {
        self.binary(&["==", "!=", "<", "<=", ">", ">=", "in"], Self::add)
    }

    fn add(&mut self) -> Result<Expr, String> {
        self.binary(&["+", "-"], Self::mul)
    }

    fn mul(&mut self) -> Result<Expr, String> {
        self.binary(&["*", "/", "%"], Self::unary)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("!") {
            return Ok(Expr::Unary("!", Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return Ok(Expr::Unary("-", Box::new(self.unary()?)));
        }
        self.member()
    }

    fn args(&mut self, close: &str) -> Result<Vec<Expr>, String> {
        let mut args = Vec::new();
        if self.eat(close) {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat(close) {
                return Ok(args);
            }
            self.expect(",")?;
        }
    }

    fn member(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                let Some(Tok::Ident(name)) = self.peek().cloned() else {
                    return Err("expected a field name".into());
                };
                self.pos += 1;
                if self.eat("(") {
                    if !METHODS.contains(&name.as_str()) {
                        return Err(format!("function {name} is not supported"));
                    }
                    let args = self.args(")")?;
                    e = Expr::Call(Some(Box::new(e)), name, args);
                } else {
                    e = Expr::Select(Box::new(e), name);
                }
            } else if self.eat("[") {
                let i = self.expr()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(i));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let tok = self.peek().cloned().ok_or("unexpected end of rule")?;
        self.pos += 1;
        Ok(match tok {
            Tok::Int(i) => Expr::Lit(json!(i)),
            Tok::Double(d) => Expr::Lit(json!(d)),
            Tok::Str(s) => Expr::Lit(json!(s)),
            Tok::Ident(w) => match w.as_str() {
                "true" => Expr::Lit(json!(true)),
                "false" => Expr::Lit(json!(false)),
                "null" => Expr::Lit(Value::Null),
                _ if self.eat("(") => {
                    if !GLOBALS.contains(&w.as_str()) {
                        return Err(format!("function {w} is not supported"));
                    }
                    let args = self.args(")")?;
                    if w == "has" && !matches!(args.as_slice(), [Expr::Select(..)]) {
                        return Err("has() needs a field selection".into());
                    }
                    Expr::Call(None, w, args)
                }
                _ => Expr::Ident(w),
            },
            Tok::Punct("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                e
            }
            Tok::Punct("[") => Expr::List(self.args("]")?),
            Tok::Punct("{") => {
                let mut entries = Vec::new();
                if !self.eat("}") {
                    loop {
                        let k = self.expr()?;
                        self.expect(":")?;
                        let v = self.expr()?;
                        entries.push((k, v));
                        if self.eat("}") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Expr::MapLit(entries)
            }
            Tok::Punct(p) => return Err(format!("unexpected {p}")),
        })
    }
}

/// Parses a rule; `Err` says why it is outside the supported subset.
pub fn parse(src: &str) -> Result<Expr, String> {
    let mut p = Parser { toks: lex(src)?, pos: 0 };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err("unexpected trailing input".into());
    }
    Ok(e)
}

/// Why evaluation stopped.
#[derive(Debug, PartialEq)]
pub enum EvalError {
    /// A selected field is absent: a real, reported failure.
    NoSuchKey(String),
    /// Anything the real type checker would have refused or the subset cannot do.
    Unsupported(String),
}

type Eval = Result<Value, EvalError>;

fn unsupported<T>(what: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::Unsupported(what.into()))
}

fn truth(v: &Value) -> Result<bool, EvalError> {
    v.as_bool().map_or_else(|| unsupported("not a bool"), Ok)
}

fn num_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| num_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| num_eq(v, w)))
        }
        _ => a == b,
    }
}

fn size_of(v: &Value) -> Eval {
    Ok(json!(match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => return unsupported("size of a non-collection"),
    }))
}

struct Env<'a> {
    vars: Vec<(String, Value)>,
    regexes: &'a mut HashMap<String, Option<regex::Regex>>,
}

impl Env<'_> {
    fn lookup(&self, name: &str) -> Eval {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => unsupported(format!("undeclared reference to '{name}'")),
        }
    }

    fn eval(&mut self, e: &Expr) -> Eval {
        match e {
            Expr::Lit(v) => Ok(v.clone()),
            Expr::Ident(n) => self.lookup(n),
            Expr::Select(t, f) => match self.eval(t)? {
                Value::Object(m) => {
                    m.get(f).cloned().ok_or_else(|| EvalError::NoSuchKey(f.clone()))
                }
                _ => unsupported("field selection on a non-object"),
            },
            Expr::Index(t, i) => {
                let (t, i) = (self.eval(t)?, self.eval(i)?);
                match (&t, &i) {
                    (Value::Array(a), Value::Number(n)) => {
                        let idx = n.as_i64().ok_or(EvalError::Unsupported("index".into()))?;
                        usize::try_from(idx)
                            .ok()
                            .and_then(|x| a.get(x).cloned())
                            .map_or_else(|| unsupported("index out of range"), Ok)
                    }
                    (Value::Object(m), Value::String(k)) => {
                        m.get(k).cloned().ok_or_else(|| EvalError::NoSuchKey(k.clone()))
                    }
                    _ => unsupported("bad index"),
                }
            }
            Expr::Unary(op, x) => {
                let v = self.eval(x)?;
                match (*op, &v) {
                    ("!", Value::Bool(b)) => Ok(json!(!b)),
                    ("-", Value::Number(n)) => Ok(match n.as_i64() {
                        Some(i) => json!(-i),
                        None => json!(-n.as_f64().unwrap_or_default()),
                    }),
                    _ => unsupported("bad operand"),
                }
            }
            Expr::Cond(c, a, b) => {
                if truth(&self.eval(c)?)? {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Expr::List(items) => {
                Ok(Value::Array(items.iter().map(|i| self.eval(i)).collect::<Result<_, _>>()?))
            }
            Expr::MapLit(entries) => {
                let mut m = Map::new();
                for (k, v) in entries {
                    let Value::String(k) = self.eval(k)? else { return unsupported("map key") };
                    let v = self.eval(v)?;
                    m.insert(k, v);
                }
                Ok(Value::Object(m))
            }
            Expr::Binary(op, l, r) => self.binary(op, l, r),
            Expr::Call(target, name, args) => self.call(target.as_deref(), name, args),
        }
    }

    fn binary(&mut self, op: &str, l: &Expr, r: &Expr) -> Eval {
        match op {
            // CEL's logical operators are commutative over errors; the common rule shape
            // `!has(self.x) || self.x ...` only needs short-circuiting.
            "&&" => {
                let a = self.eval(l);
                if matches!(a, Ok(Value::Bool(false))) {
                    return Ok(json!(false));
                }
                let b = self.eval(r)?;
                if !truth(&b)? {
                    return Ok(json!(false));
                }
                Ok(json!(truth(&a?)?))
            }
            "||" => {
                let a = self.eval(l);
                if matches!(a, Ok(Value::Bool(true))) {
                    return Ok(json!(true));
                }
                let b = self.eval(r)?;
                if truth(&b)? {
                    return Ok(json!(true));
                }
                Ok(json!(truth(&a?)?))
            }
            _ => {
                let (a, b) = (self.eval(l)?, self.eval(r)?);
                arith(op, &a, &b)
            }
        }
    }

    fn call(&mut self, target: Option<&Expr>, name: &str, args: &[Expr]) -> Eval {
        if name == "has" {
            let [Expr::Select(t, f)] = args else { return unsupported("has") };
            return match self.eval(t)? {
                Value::Object(m) => Ok(json!(m.contains_key(f))),
                _ => unsupported("has() on a non-object"),
            };
        }
        if let (Some(t), "all" | "exists" | "exists_one") = (target, name) {
            let [Expr::Ident(var), pred] = args else { return unsupported("macro") };
            let elems: Vec<Value> = match self.eval(t)? {
                Value::Array(a) => a,
                Value::Object(m) => m.keys().map(|k| json!(k)).collect(),
                _ => return unsupported("macro on a non-collection"),
            };
            let mut count = 0;
            for el in elems {
                self.vars.push((var.clone(), el));
                let r = self.eval(pred);
                self.vars.pop();
                match (name, truth(&r?)?) {
                    ("all", false) => return Ok(json!(false)),
                    ("exists", true) => return Ok(json!(true)),
                    (_, true) => count += 1,
                    _ => {}
                }
            }
            return Ok(json!(match name {
                "all" => true,
                "exists" => false,
                _ => count == 1,
            }));
        }
        let mut vals = Vec::new();
        if let Some(t) = target {
            vals.push(self.eval(t)?);
        }
        for a in args {
            vals.push(self.eval(a)?);
        }
        let s = |i: usize| vals.get(i).and_then(Value::as_str);
        match (name, vals.len()) {
            ("size", 1) => size_of(&vals[0]),
            ("int", 1) => match &vals[0] {
                Value::Number(n) => {
                    Ok(json!(n.as_i64().unwrap_or(n.as_f64().unwrap_or(0.0) as i64)))
                }
                Value::String(x) => {
                    x.parse::<i64>().map(|i| json!(i)).or_else(|_| unsupported("int()"))
                }
                _ => unsupported("int()"),
            },
            ("double", 1) => match &vals[0] {
                Value::Number(n) => Ok(json!(n.as_f64().unwrap_or_default())),
                Value::String(x) => {
                    x.parse::<f64>().map(|f| json!(f)).or_else(|_| unsupported("double()"))
                }
                _ => unsupported("double()"),
            },
            ("string", 1) => Ok(json!(match &vals[0] {
                Value::String(x) => x.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return unsupported("string()"),
            })),
            ("startsWith" | "endsWith" | "contains" | "matches", 2) => {
                let (Some(a), Some(b)) = (s(0), s(1)) else { return unsupported(name) };
                Ok(json!(match name {
                    "startsWith" => a.starts_with(b),
                    "endsWith" => a.ends_with(b),
                    "contains" => a.contains(b),
                    _ => {
                        let re = self
                            .regexes
                            .entry(b.to_string())
                            .or_insert_with(|| regex::Regex::new(b).ok());
                        match re {
                            Some(re) => re.is_match(a),
                            None => return unsupported("bad regex"),
                        }
                    }
                }))
            }
            ("lowerAscii", 1) => {
                s(0).map_or_else(|| unsupported(name), |a| Ok(json!(a.to_ascii_lowercase())))
            }
            ("upperAscii", 1) => {
                s(0).map_or_else(|| unsupported(name), |a| Ok(json!(a.to_ascii_uppercase())))
            }
            _ => unsupported(format!("no matching overload for '{name}'")),
        }
    }
}

fn arith(op: &str, a: &Value, b: &Value) -> Eval {
    use std::cmp::Ordering;
    let order = || -> Result<Ordering, EvalError> {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .zip(y.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y))
                .map_or_else(|| unsupported("compare"), Ok),
            (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
            _ => unsupported("no matching overload for comparison"),
        }
    };
    Ok(match op {
        "==" => json!(num_eq(a, b)),
        "!=" => json!(!num_eq(a, b)),
        "<" => json!(order()? == Ordering::Less),
        "<=" => json!(order()? != Ordering::Greater),
        ">" => json!(order()? == Ordering::Greater),
        ">=" => json!(order()? != Ordering::Less),
        "in" => match b {
            Value::Array(items) => json!(items.iter().any(|i| num_eq(i, a))),
            Value::Object(m) => json!(a.as_str().is_some_and(|k| m.contains_key(k))),
            _ => return unsupported("in"),
        },
        "+" => match (a, b) {
            (Value::String(x), Value::String(y)) => json!(format!("{x}{y}")),
            (Value::Array(x), Value::Array(y)) => json!([x.clone(), y.clone()].concat()),
            (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) => {
                    json!(x.checked_add(y).ok_or(EvalError::Unsupported("overflow".into()))?)
                }
                _ => json!(x.as_f64().unwrap_or_default() + y.as_f64().unwrap_or_default()),
            },
            _ => return unsupported("+"),
        },
        "-" | "*" | "/" | "%" => {
            let (Value::Number(x), Value::Number(y)) = (a, b) else { return unsupported(op) };
            match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) => {
                    let r = match op {
                        "-" => x.checked_sub(y),
                        "*" => x.checked_mul(y),
                        "/" => x.checked_div(y),
                        _ => x.checked_rem(y),
                    };
                    json!(r.ok_or(EvalError::Unsupported("arithmetic".into()))?)
                }
                _ => {
                    let (x, y) = (x.as_f64().unwrap_or_default(), y.as_f64().unwrap_or_default());
                    json!(match op {
                        "-" => x - y,
                        "*" => x * y,
                        "/" => x / y,
                        _ => return unsupported("%"),
                    })
                }
            }
        }
        _ => return unsupported(op),
    })
}

fn mentions_old_self(e: &Expr) -> bool {
    match e {
        Expr::Ident(n) => n == "oldSelf",
        Expr::Lit(_) => false,
        Expr::Select(t, _) => mentions_old_self(t),
        Expr::Index(a, b) | Expr::Binary(_, a, b) => mentions_old_self(a) || mentions_old_self(b),
        Expr::Unary(_, a) => mentions_old_self(a),
        Expr::Cond(a, b, c) => mentions_old_self(a) || mentions_old_self(b) || mentions_old_self(c),
        Expr::Call(t, _, args) => {
            t.as_deref().is_some_and(mentions_old_self) || args.iter().any(mentions_old_self)
        }
        Expr::List(items) => items.iter().any(mentions_old_self),
        Expr::MapLit(entries) => {
            entries.iter().any(|(k, v)| mentions_old_self(k) || mentions_old_self(v))
        }
    }
}

/// The rules of one schema, parsed once (by rule text).
#[derive(Debug, Default)]
pub struct RuleSet {
    /// Whether the schema has any rule at all (then schema errors that block the rules add
    /// the real "some validation rules were not checked" error).
    any: bool,
    parsed: HashMap<String, Option<Expr>>,
}

fn walk_schema(node: &Value, f: &mut dyn FnMut(&Value)) {
    f(node);
    for sub in node["properties"].as_object().into_iter().flatten().map(|(_, s)| s) {
        walk_schema(sub, f);
    }
    for key in ["additionalProperties", "items"] {
        if node[key].is_object() {
            walk_schema(&node[key], f);
        }
    }
}

/// Says once per process that a rule is outside the subset (CRDs are registered again on
/// every change of the CRD object, so a plain print would repeat).
fn report_unsupported(rule: &str, why: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !seen.iter().any(|r| r == rule) {
        seen.push(rule.to_string());
        eprintln!("fakekube: x-kubernetes-validations rule not enforced ({why}): {rule}");
    }
}

impl RuleSet {
    pub fn compile(schema: &Value) -> Self {
        let mut set = RuleSet::default();
        walk_schema(schema, &mut |node| {
            for rule in node["x-kubernetes-validations"].as_array().into_iter().flatten() {
                set.any = true;
                let text = rule["rule"].as_str().unwrap_or_default().to_string();
                if set.parsed.contains_key(&text) {
                    continue;
                }
                let parsed = match parse(&text) {
                    Ok(e) => Some(e),
                    Err(why) => {
                        report_unsupported(&text, &why);
                        None
                    }
                };
                set.parsed.insert(text, parsed);
            }
        });
        set
    }

    pub fn is_empty(&self) -> bool {
        !self.any
    }

    /// Runs every rule under `node` over `v` (at field path `path`; `old` on updates).
    pub fn check(
        &self,
        node: &Value,
        v: &Value,
        old: Option<&Value>,
        path: &str,
    ) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut regexes = HashMap::new();
        self.check_node(node, v, old, path, &mut regexes, &mut errs);
        errs
    }

    fn check_node(
        &self,
        node: &Value,
        v: &Value,
        old: Option<&Value>,
        path: &str,
        regexes: &mut HashMap<String, Option<regex::Regex>>,
        errs: &mut Vec<FieldError>,
    ) {
        if v.is_null() {
            return;
        }
        for rule in node["x-kubernetes-validations"].as_array().into_iter().flatten() {
            let text = rule["rule"].as_str().unwrap_or_default();
            let Some(Some(expr)) = self.parsed.get(text) else { continue };
            let transition = mentions_old_self(expr);
            if transition && old.is_none() {
                continue;
            }
            // Ratcheting: a rule that does not compare with oldSelf skips an unchanged value.
            if !transition && old == Some(v) {
                continue;
            }
            let mut vars = vec![("self".to_string(), v.clone())];
            if let Some(o) = old {
                vars.push(("oldSelf".to_string(), o.clone()));
            }
            let mut env = Env { vars, regexes: &mut *regexes };
            let outcome = env.eval(expr);
            let message = || -> String {
                if let Some(me) = rule["messageExpression"].as_str() {
                    let msg = parse(me).ok().and_then(|e| {
                        let mut vars = vec![("self".to_string(), v.clone())];
                        if let Some(o) = old {
                            vars.push(("oldSelf".to_string(), o.clone()));
                        }
                        let mut env = Env { vars, regexes: &mut HashMap::new() };
                        env.eval(&e).ok()?.as_str().map(str::to_string)
                    });
                    if let Some(m) = msg.filter(|m| !m.trim().is_empty()) {
                        return m;
                    }
                }
                match rule["message"].as_str().filter(|m| !m.is_empty()) {
                    Some(m) => m.to_string(),
                    None => format!("failed rule: {text}"),
                }
            };
            let field = match rule["fieldPath"].as_str().filter(|p| !p.is_empty()) {
                Some(p) => format!("{path}{p}"),
                None => path.to_string(),
            };
            match outcome {
                Ok(Value::Bool(true)) | Err(EvalError::Unsupported(_)) => {}
                Ok(Value::Bool(false)) => {
                    errs.push(rule_error(&field, rule["reason"].as_str(), message()))
                }
                Ok(_) => {}
                Err(EvalError::NoSuchKey(k)) => {
                    let what = rule["message"].as_str().filter(|m| !m.is_empty()).unwrap_or(text);
                    errs.push(FieldError::invalid(
                        &field,
                        crate::schema::type_of(v),
                        format!("no such key: {k} evaluating rule: {what}"),
                    ));
                }
            }
        }
        match v {
            Value::Object(m) => {
                let props = node["properties"].as_object();
                for (k, val) in m {
                    let sub = props.and_then(|p| p.get(k)).or_else(|| {
                        node["additionalProperties"]
                            .is_object()
                            .then(|| &node["additionalProperties"])
                    });
                    let Some(sub) = sub else { continue };
                    let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    let old_child = old.and_then(|o| o.get(k));
                    self.check_node(sub, val, old_child, &child, regexes, errs);
                }
            }
            Value::Array(items) if node["items"].is_object() => {
                for (i, item) in items.iter().enumerate() {
                    self.check_node(
                        &node["items"],
                        item,
                        None,
                        &format!("{path}[{i}]"),
                        regexes,
                        errs,
                    );
                }
            }
            _ => {}
        }
    }
}

fn rule_error(field: &str, reason: Option<&str>, message: String) -> FieldError {
    match reason {
        Some("FieldValueForbidden") => FieldError::forbidden(field, message),
        Some("FieldValueRequired") => FieldError::required(field, message),
        Some("FieldValueDuplicate") => FieldError {
            field: field.to_string(),
            reason: "FieldValueDuplicate",
            value: None,
            detail: format!("Duplicate value: {message}"),
        },
        _ => FieldError {
            field: field.to_string(),
            reason: "FieldValueInvalid",
            value: None,
            detail: format!("Invalid value: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rule: &str, this: Value, old: Option<Value>) -> Eval {
        let e = parse(rule).expect("parses");
        let mut vars = vec![("self".to_string(), this)];
        if let Some(o) = old {
            vars.push(("oldSelf".to_string(), o));
        }
        Env { vars, regexes: &mut HashMap::new() }.eval(&e)
    }

    #[test]
    fn the_subset_evaluates() {
        let obj = json!({"name": "abc", "replicas": 3, "tags": ["a", "b"], "ttl": "2h"});
        for (rule, want) in [
            ("self.name == oldSelf.name", json!(true)),
            ("has(self.name) && !has(self.other)", json!(true)),
            ("!has(self.note) || self.note != 'bad'", json!(true)),
            ("self.replicas >= 1 && self.replicas <= 5", json!(true)),
            ("size(self.tags) < 3 && self.tags.size() == 2", json!(true)),
            ("self.tags.all(t, t.size() == 1) && self.tags.exists(t, t == 'b')", json!(true)),
            ("self.ttl.matches('^[0-9]+h$') && self.name.startsWith('ab')", json!(true)),
            ("'a' in self.tags ? self.replicas * 2 : 0", json!(6)),
            ("self.replicas + 1 == 4.0", json!(true)),
        ] {
            assert_eq!(run(rule, obj.clone(), Some(obj.clone())), Ok(want), "{rule}");
        }
        assert_eq!(
            run("self.missing == 1", obj.clone(), None),
            Err(EvalError::NoSuchKey("missing".into()))
        );
        assert!(matches!(run("self.name < 1", obj, None), Err(EvalError::Unsupported(_))));
        assert!(parse("self.x.format('y')").is_err());
        assert!(parse("quantity(self.x).isLessThan(quantity('1'))").is_err());
    }

    #[test]
    fn failures_carry_the_real_messages() {
        let node = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.name == oldSelf.name", "message": "name is immutable"},
            {"rule": "!has(self.note) || self.note != \"bad\""},
        ], "properties": {"ttl": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "ttl is immutable", "reason": "FieldValueForbidden"}]}}});
        let set = RuleSet::compile(&node);
        let old = json!({"name": "abc", "ttl": "2h"});
        let new = json!({"name": "xyz", "ttl": "3h", "note": "bad"});
        let errs: Vec<String> =
            set.check(&node, &new, Some(&old), "spec").iter().map(FieldError::full).collect();
        assert_eq!(
            errs,
            [
                "spec: Invalid value: name is immutable",
                "spec: Invalid value: failed rule: !has(self.note) || self.note != \"bad\"",
                "spec.ttl: Forbidden: ttl is immutable",
            ]
        );
        assert!(set.check(&node, &new, None, "spec").len() == 1, "transition rules skip creates");
        let errs: Vec<String> = set
            .check(&node, &old, Some(&json!({"ttl": "2h"})), "spec")
            .iter()
            .map(FieldError::full)
            .collect();
        assert_eq!(
            errs,
            [
                "spec: Invalid value: \"object\": no such key: name evaluating rule: name is immutable"
            ]
        );
    }
}
