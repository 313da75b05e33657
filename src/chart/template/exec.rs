//! Evaluating parsed templates: Go's truthiness, variable scopes, dot, field chains, and the
//! functions that need the evaluator itself (`include`, `tpl`, `and`, `or`, `set`, ...).

use serde_json::{Map, Value};

use super::format;
use super::funcs;
use super::parse::{Arg, Node, Pipe};
use super::{TemplateError, Templates};

/// How deep `include` and `template` may nest (Helm stops at 1000; a chart that nests this
/// deep recurses without end).
const MAX_DEPTH: usize = 100;
/// The most text one template may produce: a chart whose includes multiply past it is broken.
const MAX_OUTPUT: usize = 64 << 20;
const FILES_KEY: &str = "\u{0}files";
const API_VERSIONS_KEY: &str = "\u{0}apiVersions";

pub fn files_marker(prefix: &str) -> Value {
    let mut map = Map::new();
    map.insert(FILES_KEY.to_string(), Value::String(prefix.to_string()));
    Value::Object(map)
}

pub fn api_versions_marker(versions: &[String]) -> Value {
    let mut map = Map::new();
    map.insert(
        API_VERSIONS_KEY.to_string(),
        Value::Array(versions.iter().cloned().map(Value::String).collect()),
    );
    Value::Object(map)
}

pub fn run(
    templates: &Templates,
    file: &str,
    body: &[Node],
    data: &Value,
) -> Result<String, TemplateError> {
    let mut exec = Exec {
        templates,
        file: file.to_string(),
        vars: vec![("$".to_string(), data.clone())],
        dot: data.clone(),
        depth: 0,
    };
    let mut out = String::new();
    match exec.nodes(body, &mut out)? {
        Flow::Next => Ok(out),
        Flow::Break | Flow::Continue => {
            Err(TemplateError::at(file, 0, "break or continue outside a range"))
        }
    }
}

/// Go's truth: false, 0, nil, and empty strings, lists and maps are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

enum Flow {
    Next,
    Break,
    Continue,
}

struct Exec<'a> {
    templates: &'a Templates,
    file: String,
    vars: Vec<(String, Value)>,
    dot: Value,
    depth: usize,
}

impl Exec<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> TemplateError {
        TemplateError::at(&self.file, line, message)
    }

    fn nodes(&mut self, nodes: &[Node], out: &mut String) -> Result<Flow, TemplateError> {
        for node in nodes {
            match self.node(node, out)? {
                Flow::Next => {}
                other => return Ok(other),
            }
            if out.len() > MAX_OUTPUT {
                return Err(self.err(0, format!("renders more than {} MiB", MAX_OUTPUT >> 20)));
            }
        }
        Ok(Flow::Next)
    }

    /// Runs a block body with its own variable scope.
    fn scoped(&mut self, nodes: &[Node], out: &mut String) -> Result<Flow, TemplateError> {
        let mark = self.vars.len();
        let flow = self.nodes(nodes, out);
        self.vars.truncate(mark);
        flow
    }

    fn node(&mut self, node: &Node, out: &mut String) -> Result<Flow, TemplateError> {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(pipe) => {
                let v = self.pipe(pipe)?;
                if pipe.decl.is_empty() {
                    out.push_str(&format::output(&v));
                } else {
                    self.declare(pipe, v)?;
                }
            }
            Node::If { branches, otherwise } | Node::With { branches, otherwise } => {
                let is_with = matches!(node, Node::With { .. });
                let mark = self.vars.len();
                let mut flow = None;
                for (pipe, body) in branches {
                    let v = self.pipe(pipe)?;
                    if !pipe.decl.is_empty() {
                        self.declare(pipe, v.clone())?;
                    }
                    if truthy(&v) {
                        let saved = is_with.then(|| std::mem::replace(&mut self.dot, v));
                        let result = self.scoped(body, out);
                        if let Some(saved) = saved {
                            self.dot = saved;
                        }
                        flow = Some(result);
                        break;
                    }
                }
                let flow = match flow {
                    Some(flow) => flow,
                    None => match otherwise {
                        Some(body) => self.scoped(body, out),
                        None => Ok(Flow::Next),
                    },
                };
                self.vars.truncate(mark);
                return flow;
            }
            Node::Range { pipe, body, otherwise } => return self.range(pipe, body, otherwise, out),
            Node::Template { name, pipe, line } => {
                let data = match pipe {
                    Some(p) => self.pipe(p)?,
                    None => Value::Null,
                };
                out.push_str(&self.call_template(name, data, *line)?);
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Next)
    }

    fn range(
        &mut self,
        pipe: &Pipe,
        body: &[Node],
        otherwise: &Option<Vec<Node>>,
        out: &mut String,
    ) -> Result<Flow, TemplateError> {
        let v = self.pipe(pipe)?;
        let items: Vec<(Value, Value)> = match v {
            Value::Array(items) => {
                items.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect()
            }
            Value::Object(map) => map.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            Value::Null => Vec::new(),
            Value::Number(n) if n.as_i64().is_some() => {
                let count = n.as_i64().unwrap_or_default().max(0);
                (0..count).map(|i| (Value::from(i), Value::from(i))).collect()
            }
            other => {
                return Err(self.err(
                    pipe.line,
                    format!("range can't iterate over {}", format::go_value(&other)),
                ));
            }
        };
        if items.is_empty() {
            return match otherwise {
                Some(body) => self.scoped(body, out),
                None => Ok(Flow::Next),
            };
        }
        let saved = self.dot.clone();
        for (key, value) in items {
            let mark = self.vars.len();
            match pipe.decl.as_slice() {
                [] => {}
                [v] => self.vars.push((v.clone(), value.clone())),
                [k, v, ..] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), value.clone()));
                }
            }
            self.dot = value;
            let flow = self.nodes(body, out);
            self.vars.truncate(mark);
            match flow {
                Ok(Flow::Break) => break,
                Ok(_) => {}
                Err(e) => {
                    self.dot = saved;
                    return Err(e);
                }
            }
        }
        self.dot = saved;
        Ok(Flow::Next)
    }

    fn declare(&mut self, pipe: &Pipe, v: Value) -> Result<(), TemplateError> {
        let Some(name) = pipe.decl.first() else { return Ok(()) };
        if pipe.assign {
            match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = v,
                None => return Err(self.err(pipe.line, format!("undefined variable: {name}"))),
            }
        } else {
            self.vars.push((name.clone(), v));
        }
        Ok(())
    }

    fn call_template(
        &mut self,
        name: &str,
        data: Value,
        line: usize,
    ) -> Result<String, TemplateError> {
        let Some((file, body)) = self.templates.defines.get(name) else {
            return Err(self.err(line, format!("no template {name:?} is defined")));
        };
        if self.depth >= MAX_DEPTH {
            return Err(self.err(line, format!("template {name:?} nests deeper than {MAX_DEPTH}")));
        }
        let mut inner = Exec {
            templates: self.templates,
            file: file.clone(),
            vars: vec![("$".to_string(), data.clone())],
            dot: data,
            depth: self.depth + 1,
        };
        let mut out = String::new();
        inner.nodes(body, &mut out)?;
        Ok(out)
    }

    fn pipe(&mut self, pipe: &Pipe) -> Result<Value, TemplateError> {
        let mut last = None;
        for cmd in &pipe.cmds {
            last = Some(self.command(cmd, last, pipe.line)?);
        }
        Ok(last.unwrap_or(Value::Null))
    }

    fn command(
        &mut self,
        cmd: &[Arg],
        piped: Option<Value>,
        line: usize,
    ) -> Result<Value, TemplateError> {
        match &cmd[0] {
            Arg::Func(name) => self.call(name, &cmd[1..], piped, line),
            head => {
                if cmd.len() > 1 || piped.is_some() {
                    if let Some(v) = self.method(head, &cmd[1..], piped, line)? {
                        return Ok(v);
                    }
                    return Err(self.err(line, "can't give an argument to a non-function"));
                }
                self.arg(head, line)
            }
        }
    }

    /// `.Files.Get "name"` and `.Capabilities.APIVersions.Has "apps/v1"`: the only methods.
    fn method(
        &mut self,
        head: &Arg,
        args: &[Arg],
        piped: Option<Value>,
        line: usize,
    ) -> Result<Option<Value>, TemplateError> {
        let (receiver, method) = match head {
            Arg::Field(chain) if chain.len() >= 2 => {
                let (method, rest) = chain.split_last().unwrap_or((&chain[0], &[]));
                (self.chain(&self.dot, rest, line)?, method)
            }
            Arg::Variable(name, chain) if !chain.is_empty() => {
                let (method, rest) = chain.split_last().unwrap_or((&chain[0], &[]));
                (self.chain(self.variable(name, line)?, rest, line)?, method)
            }
            _ => return Ok(None),
        };
        let mut values = Vec::new();
        for a in args {
            values.push(self.arg(a, line)?);
        }
        values.extend(piped);
        let text = |values: &[Value]| match values {
            [Value::String(s)] => Ok(s.clone()),
            _ => Err(self.err(line, format!("{method} takes one string"))),
        };
        if let Some(prefix) = receiver.get(FILES_KEY) {
            let name = format!("{}{}", prefix.as_str().unwrap_or_default(), text(&values)?);
            return match method.as_str() {
                "Get" => Ok(Some(Value::String(
                    self.templates.chart_files.get(&name).cloned().unwrap_or_default(),
                ))),
                other => Err(self.err(line, funcs::unsupported(&format!(".Files.{other}")))),
            };
        }
        if let Some(Value::Array(versions)) = receiver.get(API_VERSIONS_KEY) {
            let name = text(&values)?;
            return match method.as_str() {
                // `apps/v1`, or `apps/v1/Deployment` for a kind of it.
                "Has" => {
                    let group_version = match name.rsplit_once('/') {
                        Some((gv, kind)) if kind.starts_with(char::is_uppercase) => gv,
                        _ => name.as_str(),
                    };
                    Ok(Some(Value::Bool(
                        versions.iter().any(|v| v.as_str() == Some(group_version)),
                    )))
                }
                other => Err(self
                    .err(line, funcs::unsupported(&format!(".Capabilities.APIVersions.{other}")))),
            };
        }
        Ok(None)
    }

    fn variable(&self, name: &str, line: usize) -> Result<&Value, TemplateError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| self.err(line, format!("undefined variable: {name}")))
    }

    /// Follows a field chain by reference and copies only what it ends at.
    fn chain(&self, start: &Value, fields: &[String], line: usize) -> Result<Value, TemplateError> {
        static NIL: Value = Value::Null;
        let mut v = start;
        for field in fields {
            v = match v {
                Value::Object(map) => {
                    if map.contains_key(FILES_KEY) || map.contains_key(API_VERSIONS_KEY) {
                        return Err(
                            self.err(line, format!("{field} is a method; give its argument"))
                        );
                    }
                    map.get(field).unwrap_or(&NIL)
                }
                Value::Null => {
                    return Err(
                        self.err(line, format!("nil pointer evaluating interface {{}}.{field}"))
                    );
                }
                other => {
                    return Err(self.err(
                        line,
                        format!("can't evaluate field {field} in type {}", funcs::type_of(other)),
                    ));
                }
            };
        }
        Ok(v.clone())
    }

    fn arg(&mut self, arg: &Arg, line: usize) -> Result<Value, TemplateError> {
        match arg {
            Arg::Dot => Ok(self.dot.clone()),
            Arg::Field(chain) => self.chain(&self.dot, chain, line),
            Arg::Variable(name, chain) => self.chain(self.variable(name, line)?, chain, line),
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Func(name) => self.call(name, &[], None, line),
            Arg::Sub(pipe, chain) => {
                let v = self.pipe(pipe)?;
                self.chain(&v, chain, line)
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        args: &[Arg],
        piped: Option<Value>,
        line: usize,
    ) -> Result<Value, TemplateError> {
        // `and` and `or` stop at the first argument that decides them, as Go's do.
        if name == "and" || name == "or" {
            let count = args.len() + usize::from(piped.is_some());
            if count == 0 {
                return Err(self.err(line, format!("{name} needs at least one argument")));
            }
            let mut last = Value::Null;
            for a in args {
                last = self.arg(a, line)?;
                if truthy(&last) == (name == "or") {
                    return Ok(last);
                }
            }
            return Ok(piped.unwrap_or(last));
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for a in args {
            values.push(self.arg(a, line)?);
        }
        values.extend(piped);
        let result = match name {
            "include" => match values.as_slice() {
                [Value::String(template), data] => {
                    Value::String(self.call_template(template, data.clone(), line)?)
                }
                [Value::String(template)] => {
                    Value::String(self.call_template(template, Value::Null, line)?)
                }
                _ => return Err(self.err(line, "include takes a template name and its data")),
            },
            "tpl" => match values.as_slice() {
                [Value::String(text), data] => Value::String(self.tpl(text, data, line)?),
                _ => return Err(self.err(line, "tpl takes a template text and its data")),
            },
            "required" => match values.as_slice() {
                [Value::String(message), v] => {
                    if v.is_null() || v.as_str() == Some("") {
                        return Err(self.err(line, format!("execution error: {message}")));
                    }
                    v.clone()
                }
                _ => return Err(self.err(line, "required takes a message and a value")),
            },
            "fail" => {
                let message = values.first().map(format::go_value).unwrap_or_default();
                return Err(self.err(line, format!("execution error: {message}")));
            }
            // `helm template` has no cluster to look in, so it finds nothing; neither does vc.
            "lookup" => Value::Object(Map::new()),
            _ => funcs::call(name, &values).map_err(|e| self.err(line, format!("{name}: {e}")))?,
        };
        if funcs::MUTATES_FIRST.contains(&name)
            && let Some(first) = args.first()
        {
            self.write_back(first, result.clone());
        }
        Ok(result)
    }

    /// `set`, `unset` and `merge` change the map they are given in Go; with values that are
    /// copied, the changed map goes back where the first argument came from (and to both `$`
    /// and `.` while they are the same value, as at a template's top).
    fn write_back(&mut self, arg: &Arg, value: Value) {
        let root_is_dot =
            self.vars.iter().find(|(n, _)| n == "$").is_some_and(|(_, v)| *v == self.dot);
        let (to_dot, var, path): (bool, Option<&str>, &[String]) = match arg {
            Arg::Dot => (true, root_is_dot.then_some("$"), &[]),
            Arg::Field(chain) => (true, root_is_dot.then_some("$"), chain.as_slice()),
            Arg::Variable(name, chain) => {
                (name == "$" && root_is_dot, Some(name.as_str()), chain.as_slice())
            }
            _ => return,
        };
        if to_dot {
            set_path(&mut self.dot, path, value.clone());
        }
        if let Some(name) = var
            && let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name)
        {
            set_path(&mut slot.1, path, value);
        }
    }

    fn tpl(&mut self, text: &str, data: &Value, line: usize) -> Result<String, TemplateError> {
        let mut templates = self.templates.clone();
        let name = format!("{} (tpl)", self.file);
        templates.add(&name, text).map_err(|e| self.err(line, format!("tpl: {e}")))?;
        let parsed = &templates.files[&name];
        let mut inner = Exec {
            templates: &templates,
            file: name.clone(),
            vars: vec![("$".to_string(), data.clone())],
            dot: data.clone(),
            depth: self.depth + 1,
        };
        let mut out = String::new();
        inner.nodes(&parsed.body, &mut out)?;
        Ok(out)
    }
}

fn set_path(root: &mut Value, path: &[String], value: Value) {
    let mut target = root;
    for key in path {
        match target {
            Value::Object(map) => match map.get_mut(key) {
                Some(next) => target = next,
                None => return,
            },
            _ => return,
        }
    }
    *target = value;
}
