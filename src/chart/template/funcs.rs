//! The functions templates may call: Go's builtins and the Sprig and Helm functions charts
//! use, over JSON values. The list is the contract: a name outside it is refused at parse time.

use std::cmp::Ordering;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::Digest as _;

use super::exec::truthy;
use super::format::{self, as_integer, go_value};

/// Every function a template may call, in the order docs/provisioning.md lists them.
#[rustfmt::skip] // grouped as the documentation groups them, rather than one a line
pub const SUPPORTED: &[&str] = &[
    // Go's builtins
    "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "slice", "print",
    "printf", "println",
    // Helm's
    "include", "tpl", "required", "fail", "lookup", "toYaml", "mustToYaml", "toJson",
    "mustToJson", "toPrettyJson", "toRawJson", "fromYaml", "fromJson", "mustFromJson",
    "fromYamlArray", "fromJsonArray",
    // Sprig's: defaults and logic
    "default", "empty", "coalesce", "ternary",
    // strings
    "quote", "squote", "indent", "nindent", "trim", "trimSuffix", "trimPrefix", "trunc", "upper",
    "lower", "title", "replace", "contains", "hasPrefix", "hasSuffix", "repeat", "substr",
    "nospace", "cat", "join", "splitList", "split", "trimAll", "snakecase", "kebabcase",
    "camelcase", "b64enc", "b64dec", "sha256sum", "regexMatch", "mustRegexMatch",
    "regexReplaceAll", "mustRegexReplaceAll", "regexFind", "toString", "toStrings", "atoi",
    "base", "dir", "ext",
    // lists and maps
    "list", "append", "mustAppend", "first", "mustFirst", "last", "mustLast", "has", "mustHas",
    "uniq", "mustUniq", "compact", "mustCompact", "concat", "sortAlpha", "until", "untilStep",
    "dict", "get", "set", "unset", "hasKey", "keys", "values", "pick", "omit", "merge",
    "mustMerge", "mergeOverwrite", "mustMergeOverwrite", "deepCopy", "mustDeepCopy", "dig",
    // numbers and types
    "int", "int64", "float64", "add", "add1", "sub", "mul", "div", "mod", "max", "min",
    "semverCompare", "typeOf", "kindOf", "kindIs", "typeIs",
];

/// The functions whose first argument, a map, Go changes in place.
pub const MUTATES_FIRST: &[&str] =
    &["set", "unset", "merge", "mergeOverwrite", "mustMerge", "mustMergeOverwrite"];

/// The `must` forms: the same function, which in Sprig returns its error instead of
/// swallowing it; here every function reports its errors, so they are one.
fn without_must(name: &str) -> &str {
    match name {
        "mustToYaml" => "toYaml",
        "mustToJson" => "toJson",
        "mustFromJson" => "fromJson",
        "mustRegexMatch" => "regexMatch",
        "mustRegexReplaceAll" => "regexReplaceAll",
        "mustAppend" => "append",
        "mustFirst" => "first",
        "mustLast" => "last",
        "mustHas" => "has",
        "mustUniq" => "uniq",
        "mustCompact" => "compact",
        "mustMerge" => "merge",
        "mustMergeOverwrite" => "mergeOverwrite",
        "mustDeepCopy" => "deepCopy",
        other => other,
    }
}

/// Sprig's snakecase and kebabcase: words split at case changes and separators, lowercased,
/// joined by `sep`.
fn separated(text: &str, sep: char) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if c == '_' || c == '-' || c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(sep) {
                out.push(sep);
            }
            previous = None;
            continue;
        }
        if c.is_uppercase()
            && previous.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
            && !out.ends_with(sep)
        {
            out.push(sep);
        }
        out.extend(c.to_lowercase());
        previous = Some(c);
    }
    out
}

pub fn is_supported(name: &str) -> bool {
    SUPPORTED.contains(&name)
}

/// The message for a function (or method) outside the subset.
pub fn unsupported(name: &str) -> String {
    format!(
        "function {name:?} is not supported by vc's chart renderer (docs/provisioning.md lists what is); render this chart with helm template and pass the output to --apply"
    )
}

/// Go's type name of a value, as Sprig's `typeOf` prints it.
pub fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "invalid",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
        other => type_of(other),
    }
}

/// Sprig's string form of a value: strings as they are, `nil` empty, the rest as `%v`.
fn strval(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => go_value(other),
    }
}

fn int(n: i64) -> Value {
    Value::from(n)
}

/// Sprig's (cast's) integer of a value: numbers truncated, strings parsed, the rest 0.
fn to_int(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or_else(|| n.as_f64().unwrap_or_default() as i64),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| s.trim().parse::<f64>().ok().map(|f| f as i64))
            .unwrap_or_default(),
        Value::Bool(b) => i64::from(*b),
        _ => 0,
    }
}

fn to_float(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or_default(),
        Value::String(s) => s.trim().parse().unwrap_or_default(),
        Value::Bool(b) => f64::from(u8::from(*b)),
        _ => 0.0,
    }
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Sprig's emptiness: what Go's truth calls false.
fn empty(v: &Value) -> bool {
    !truthy(v)
}

fn list_of<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(format!("{what} must be a list, not {}", type_of(other))),
    }
}

fn map_of<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    match v {
        Value::Object(map) => Ok(map),
        other => Err(format!("{what} must be a map, not {}", type_of(other))),
    }
}

fn text(v: &Value) -> String {
    strval(v)
}

/// Go's `eq` of two values: numbers by value, everything else by equality.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Ok(x.cmp(&y)),
            _ => {
                x.as_f64().partial_cmp(&y.as_f64()).ok_or_else(|| "cannot compare NaN".to_string())
            }
        },
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => Err(format!("incompatible types for comparison: {} and {}", type_of(a), type_of(b))),
    }
}

/// Deep merge of `src` into `dst`: keys missing in `dst` are filled, maps merged recursively;
/// with `overwrite`, `src`'s values win.
fn merge_into(dst: &mut Map<String, Value>, src: &Map<String, Value>, overwrite: bool) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => merge_into(d, s, overwrite),
            (Some(existing), _) if overwrite && !(v.is_null()) => *existing = v.clone(),
            (Some(existing), _) if existing.is_null() => *existing = v.clone(),
            (Some(_), _) => {}
            (None, _) => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

fn arity(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("takes {n} argument{}, got {}", if n == 1 { "" } else { "s" }, args.len()))
    }
}

/// Calls a pure function with its evaluated arguments (the piped value last).
#[allow(clippy::too_many_lines)] // one arm per function reads better than a table of closures
pub fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let s = |i: usize| args.get(i).map(text).unwrap_or_default();
    let name = without_must(name);
    Ok(match name {
        "slice" => {
            let bound = |i: usize| args.get(i).map(|v| usize::try_from(to_int(v)).unwrap_or(0));
            match args.first() {
                Some(Value::Array(items)) => {
                    let end = bound(2).unwrap_or(items.len());
                    let start = bound(1).unwrap_or(0);
                    if start > end || end > items.len() {
                        return Err(format!("index out of range: {start}:{end}"));
                    }
                    Value::Array(items[start..end].to_vec())
                }
                Some(Value::String(text)) => {
                    let end = bound(2).unwrap_or(text.len());
                    let start = bound(1).unwrap_or(0);
                    text.get(start..end)
                        .map(|t| Value::String(t.to_string()))
                        .ok_or_else(|| format!("index out of range: {start}:{end}"))?
                }
                _ => return Err("takes a list or a string, and indexes".into()),
            }
        }
        "toPrettyJson" => {
            arity(args, 1)?;
            Value::String(serde_json::to_string_pretty(&args[0]).map_err(|e| e.to_string())?)
        }
        "toRawJson" => {
            arity(args, 1)?;
            Value::String(serde_json::to_string(&args[0]).map_err(|e| e.to_string())?)
        }
        "fromYamlArray" | "fromJsonArray" => {
            arity(args, 1)?;
            let parsed: Result<Value, String> = if name == "fromYamlArray" {
                serde_saphyr::from_str::<Value>(&s(0)).map_err(|e| e.to_string())
            } else {
                serde_json::from_str(&s(0)).map_err(|e| e.to_string())
            };
            match parsed {
                Ok(Value::Array(items)) => Value::Array(items),
                Ok(Value::Null) => Value::Array(Vec::new()),
                Ok(other) => {
                    Value::Array(vec![Value::String(format!("not a list: {}", go_value(&other)))])
                }
                Err(e) => Value::Array(vec![Value::String(e)]),
            }
        }
        "split" => {
            arity(args, 2)?;
            Value::Object(
                s(1).split(&s(0))
                    .enumerate()
                    .map(|(i, part)| (format!("_{i}"), Value::String(part.to_string())))
                    .collect(),
            )
        }
        "trimAll" => {
            arity(args, 2)?;
            let cutset: Vec<char> = s(0).chars().collect();
            Value::String(s(1).trim_matches(|c| cutset.contains(&c)).to_string())
        }
        "snakecase" => Value::String(separated(&s(0), '_')),
        "kebabcase" => Value::String(separated(&s(0), '-')),
        "camelcase" => Value::String(
            s(0).split(|c: char| c == '_' || c == '-' || c.is_whitespace())
                .map(|word| {
                    let mut chars = word.chars();
                    chars
                        .next()
                        .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                        .unwrap_or_default()
                })
                .collect::<String>(),
        ),
        "regexFind" => {
            arity(args, 2)?;
            let re = regex::Regex::new(&s(0)).map_err(|e| format!("bad pattern: {e}"))?;
            Value::String(re.find(&s(1)).map(|m| m.as_str().to_string()).unwrap_or_default())
        }
        "atoi" => int(s(0).trim().parse().unwrap_or_default()),
        "base" | "dir" | "ext" => {
            let path = s(0);
            let trimmed = path.trim_end_matches('/');
            let (parent, last) = match trimmed.rsplit_once('/') {
                Some((parent, last)) => (if parent.is_empty() { "/" } else { parent }, last),
                None => (".", trimmed),
            };
            Value::String(match name {
                "base" if path.is_empty() => ".".to_string(),
                "base" if trimmed.is_empty() => "/".to_string(),
                "base" => last.to_string(),
                "dir" => parent.to_string(),
                _ => last.rfind('.').map(|i| last[i..].to_string()).unwrap_or_default(),
            })
        }
        "until" | "untilStep" => {
            let (start, stop, step) = if name == "until" {
                arity(args, 1)?;
                let stop = to_int(&args[0]);
                (0, stop, if stop < 0 { -1 } else { 1 })
            } else {
                arity(args, 3)?;
                (to_int(&args[0]), to_int(&args[1]), to_int(&args[2]))
            };
            let mut out = Vec::new();
            let mut i = start;
            // Sprig returns nothing for a step that never reaches the end.
            while step != 0 && ((step > 0 && i < stop) || (step < 0 && i > stop)) {
                out.push(int(i));
                if out.len() > 100_000 {
                    return Err("makes a list longer than 100000".into());
                }
                i += step;
            }
            Value::Array(out)
        }
        "not" => {
            arity(args, 1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("takes at least 2 arguments".into());
            }
            Value::Bool(args[1..].iter().any(|b| equal(&args[0], b)))
        }
        "ne" => {
            arity(args, 2)?;
            Value::Bool(!equal(&args[0], &args[1]))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(args, 2)?;
            let order = compare(&args[0], &args[1])?;
            Value::Bool(match name {
                "lt" => order == Ordering::Less,
                "le" => order != Ordering::Greater,
                "gt" => order == Ordering::Greater,
                _ => order != Ordering::Less,
            })
        }
        "len" => {
            arity(args, 1)?;
            int(match &args[0] {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => 0,
                other => return Err(format!("len of {}", type_of(other))),
            } as i64)
        }
        "index" => {
            let mut v = args.first().cloned().ok_or("takes a collection")?;
            for key in &args[1..] {
                v = match (&v, key) {
                    (Value::Object(m), Value::String(k)) => {
                        m.get(k).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(items), k) => {
                        let i = as_integer(k).ok_or("a list index must be an integer")?;
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| items.get(i))
                            .cloned()
                            .ok_or_else(|| format!("index {i} out of range"))?
                    }
                    (Value::Null, _) => Value::Null,
                    (other, _) => {
                        return Err(format!("can't index item of type {}", type_of(other)));
                    }
                };
            }
            v
        }
        "print" => {
            // Go's Sprint: a space between operands when neither is a string.
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0 && !a.is_string() && !args[i - 1].is_string() {
                    out.push(' ');
                }
                out.push_str(&go_value(a));
            }
            Value::String(out)
        }
        "println" => {
            let parts: Vec<String> = args.iter().map(go_value).collect();
            Value::String(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            let Some(Value::String(f)) = args.first() else {
                return Err("takes a format string first".into());
            };
            Value::String(format::printf(f, &args[1..]))
        }
        "toYaml" => {
            arity(args, 1)?;
            Value::String(format::to_yaml(&args[0]))
        }
        "toJson" => {
            arity(args, 1)?;
            Value::String(serde_json::to_string(&args[0]).map_err(|e| e.to_string())?)
        }
        "fromYaml" | "fromJson" => {
            arity(args, 1)?;
            let parsed: Result<Value, String> = if name == "fromYaml" {
                serde_saphyr::from_str::<Value>(&s(0)).map_err(|e| e.to_string())
            } else {
                serde_json::from_str(&s(0)).map_err(|e| e.to_string())
            };
            match parsed {
                Ok(Value::Object(m)) => Value::Object(m),
                Ok(Value::Null) => Value::Object(Map::new()),
                Ok(other) => {
                    let mut m = Map::new();
                    m.insert(
                        "Error".into(),
                        Value::String(format!("not a map: {}", go_value(&other))),
                    );
                    Value::Object(m)
                }
                Err(e) => {
                    // Helm reports a parse error inside the result, not as a failure.
                    let mut m = Map::new();
                    m.insert("Error".into(), Value::String(e));
                    Value::Object(m)
                }
            }
        }
        "default" => match args {
            [d] => d.clone(),
            [d, given] => {
                if empty(given) {
                    d.clone()
                } else {
                    given.clone()
                }
            }
            _ => return Err("takes a default and a value".into()),
        },
        "empty" => {
            arity(args, 1)?;
            Value::Bool(empty(&args[0]))
        }
        "coalesce" => args.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Null),
        "ternary" => {
            arity(args, 3)?;
            if truthy(&args[2]) { args[0].clone() } else { args[1].clone() }
        }
        "quote" => Value::String(
            args.iter()
                .filter(|a| !a.is_null())
                .map(|a| format::go_quote(&strval(a)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => Value::String(
            args.iter()
                .filter(|a| !a.is_null())
                .map(|a| format!("'{}'", strval(a)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "indent" | "nindent" => {
            arity(args, 2)?;
            let width = usize::try_from(to_int(&args[0])).unwrap_or_default();
            let pad = " ".repeat(width);
            let indented = format!("{pad}{}", s(1).replace('\n', &format!("\n{pad}")));
            Value::String(if name == "nindent" { format!("\n{indented}") } else { indented })
        }
        "trim" => {
            arity(args, 1)?;
            Value::String(s(0).trim().to_string())
        }
        "trimSuffix" => {
            arity(args, 2)?;
            let (suffix, text) = (s(0), s(1));
            Value::String(text.strip_suffix(suffix.as_str()).unwrap_or(&text).to_string())
        }
        "trimPrefix" => {
            arity(args, 2)?;
            let (prefix, text) = (s(0), s(1));
            Value::String(text.strip_prefix(prefix.as_str()).unwrap_or(&text).to_string())
        }
        "trunc" => {
            arity(args, 2)?;
            let n = to_int(&args[0]);
            let text: Vec<char> = s(1).chars().collect();
            let len = text.len() as i64;
            Value::String(if n >= 0 && len > n {
                text[..n as usize].iter().collect()
            } else if n < 0 && len + n > 0 {
                text[(len + n) as usize..].iter().collect()
            } else {
                text.iter().collect()
            })
        }
        "upper" => Value::String(s(0).to_uppercase()),
        "lower" => Value::String(s(0).to_lowercase()),
        "title" => {
            let mut out = String::new();
            let mut at_start = true;
            for c in s(0).chars() {
                if at_start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                at_start = !c.is_alphanumeric() && c != '\'';
            }
            Value::String(out)
        }
        "replace" => {
            arity(args, 3)?;
            Value::String(s(2).replace(&s(0), &s(1)))
        }
        "contains" => {
            arity(args, 2)?;
            Value::Bool(s(1).contains(&s(0)))
        }
        "hasPrefix" => {
            arity(args, 2)?;
            Value::Bool(s(1).starts_with(&s(0)))
        }
        "hasSuffix" => {
            arity(args, 2)?;
            Value::Bool(s(1).ends_with(&s(0)))
        }
        "repeat" => {
            arity(args, 2)?;
            Value::String(s(1).repeat(usize::try_from(to_int(&args[0])).unwrap_or_default()))
        }
        "substr" => {
            arity(args, 3)?;
            let chars: Vec<char> = s(2).chars().collect();
            let len = chars.len() as i64;
            let (start, end) = (to_int(&args[0]), to_int(&args[1]));
            let start = start.clamp(0, len) as usize;
            let end = if end < 0 || end > len { len as usize } else { end as usize };
            Value::String(if start < end {
                chars[start..end].iter().collect()
            } else {
                String::new()
            })
        }
        "nospace" => Value::String(s(0).chars().filter(|c| !c.is_whitespace()).collect()),
        "cat" => Value::String(
            args.iter().filter(|a| !a.is_null()).map(strval).collect::<Vec<_>>().join(" "),
        ),
        "join" => {
            arity(args, 2)?;
            let items: Vec<String> = match &args[1] {
                Value::Array(items) => items.iter().map(strval).collect(),
                other => vec![strval(other)],
            };
            Value::String(items.join(&s(0)))
        }
        "splitList" => {
            arity(args, 2)?;
            Value::Array(s(1).split(&s(0)).map(|p| Value::String(p.to_string())).collect())
        }
        "b64enc" => Value::String(base64::engine::general_purpose::STANDARD.encode(s(0))),
        "b64dec" => Value::String(match base64::engine::general_purpose::STANDARD.decode(s(0)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => e.to_string(),
        }),
        "sha256sum" => {
            let digest = sha2::Sha256::digest(s(0).as_bytes());
            Value::String(digest.iter().map(|b| format!("{b:02x}")).collect())
        }
        "regexMatch" | "regexReplaceAll" => {
            let re = regex::Regex::new(&s(0)).map_err(|e| format!("bad pattern: {e}"))?;
            if name == "regexMatch" {
                arity(args, 2)?;
                Value::Bool(re.is_match(&s(1)))
            } else {
                arity(args, 3)?;
                // Go's ${1} and $1 both expand; so do Rust's.
                Value::String(re.replace_all(&s(1), s(2).as_str()).into_owned())
            }
        }
        "toString" => Value::String(args.first().map(strval).unwrap_or_default()),
        "toStrings" => Value::Array(match args.first() {
            Some(Value::Array(items)) => items.iter().map(|v| Value::String(strval(v))).collect(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => vec![Value::String(strval(other))],
        }),
        "list" => Value::Array(args.to_vec()),
        "append" => {
            arity(args, 2)?;
            let mut items = list_of(&args[0], "append's first argument")?.clone();
            items.push(args[1].clone());
            Value::Array(items)
        }
        "first" => list_of(&args[0], "first's argument")?.first().cloned().unwrap_or(Value::Null),
        "last" => list_of(&args[0], "last's argument")?.last().cloned().unwrap_or(Value::Null),
        "has" => {
            arity(args, 2)?;
            Value::Bool(list_of(&args[1], "has's list")?.iter().any(|v| equal(v, &args[0])))
        }
        "uniq" => {
            let mut out: Vec<Value> = Vec::new();
            for v in list_of(&args[0], "uniq's argument")? {
                if !out.iter().any(|o| equal(o, v)) {
                    out.push(v.clone());
                }
            }
            Value::Array(out)
        }
        "compact" => Value::Array(
            list_of(&args[0], "compact's argument")?
                .iter()
                .filter(|v| !empty(v))
                .cloned()
                .collect(),
        ),
        "concat" => {
            let mut out = Vec::new();
            for a in args {
                out.extend(list_of(a, "concat's arguments")?.iter().cloned());
            }
            Value::Array(out)
        }
        "sortAlpha" => {
            let mut items: Vec<String> = match &args[0] {
                Value::Array(items) => items.iter().map(strval).collect(),
                other => vec![strval(other)],
            };
            items.sort();
            Value::Array(items.into_iter().map(Value::String).collect())
        }
        "dict" => {
            let mut m = Map::new();
            for pair in args.chunks(2) {
                let value = pair.get(1).cloned().unwrap_or_else(|| Value::String(String::new()));
                m.insert(strval(&pair[0]), value);
            }
            Value::Object(m)
        }
        "get" => {
            arity(args, 2)?;
            map_of(&args[0], "get's map")?
                .get(&s(1))
                .cloned()
                .unwrap_or_else(|| Value::String(String::new()))
        }
        "set" => {
            arity(args, 3)?;
            let mut m = map_of(&args[0], "set's map")?.clone();
            m.insert(s(1), args[2].clone());
            Value::Object(m)
        }
        "unset" => {
            arity(args, 2)?;
            let mut m = map_of(&args[0], "unset's map")?.clone();
            m.remove(&s(1));
            Value::Object(m)
        }
        "hasKey" => {
            arity(args, 2)?;
            Value::Bool(map_of(&args[0], "hasKey's map")?.contains_key(&s(1)))
        }
        "keys" => {
            let mut out = Vec::new();
            for a in args {
                out.extend(map_of(a, "keys' argument")?.keys().cloned().map(Value::String));
            }
            Value::Array(out)
        }
        "values" => Value::Array(map_of(&args[0], "values' argument")?.values().cloned().collect()),
        "pick" | "omit" => {
            let m = map_of(args.first().ok_or("takes a map")?, "its first argument")?;
            let named: Vec<String> = args[1..].iter().map(strval).collect();
            let keep = |k: &String| named.contains(k) == (name == "pick");
            Value::Object(
                m.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            )
        }
        "merge" | "mergeOverwrite" => {
            let mut dst = map_of(args.first().ok_or("takes maps")?, "its first argument")?.clone();
            for src in &args[1..] {
                merge_into(&mut dst, map_of(src, "its arguments")?, name == "mergeOverwrite");
            }
            Value::Object(dst)
        }
        "deepCopy" => args.first().cloned().unwrap_or(Value::Null),
        "dig" => {
            // dig "a" "b" DEFAULT MAP
            if args.len() < 3 {
                return Err("takes keys, a default and a map".into());
            }
            let (map, rest) = args.split_last().unwrap_or((&Value::Null, &[]));
            let (default, keys) = rest.split_last().unwrap_or((&Value::Null, &[]));
            let mut v = map.clone();
            for k in keys {
                v = match v {
                    Value::Object(mut m) => match m.remove(&strval(k)) {
                        Some(next) => next,
                        None => return Ok(default.clone()),
                    },
                    _ => return Ok(default.clone()),
                };
            }
            v
        }
        "int" | "int64" => int(to_int(args.first().unwrap_or(&Value::Null))),
        "float64" => float(to_float(args.first().unwrap_or(&Value::Null))),
        "add" => {
            if args.iter().all(|a| as_integer(a).is_some() || !a.is_number()) {
                int(args.iter().map(to_int).sum())
            } else {
                float(args.iter().map(to_float).sum())
            }
        }
        "add1" => int(to_int(&args[0]) + 1),
        "sub" | "mul" | "div" | "mod" => {
            arity(args, 2)?;
            let (a, b) = (to_int(&args[0]), to_int(&args[1]));
            int(match name {
                "sub" => a - b,
                "mul" => a * b,
                _ if b == 0 => return Err("division by zero".into()),
                "div" => a / b,
                _ => a % b,
            })
        }
        "max" | "min" => {
            let numbers = args.iter().map(to_int);
            int(if name == "max" { numbers.max() } else { numbers.min() }.unwrap_or_default())
        }
        "semverCompare" => {
            arity(args, 2)?;
            Value::Bool(semver_matches(&s(0), &s(1))?)
        }
        "typeOf" => Value::String(type_of(&args[0]).to_string()),
        "kindOf" => Value::String(kind_of(&args[0]).to_string()),
        "kindIs" => {
            arity(args, 2)?;
            Value::Bool(kind_of(&args[1]) == s(0))
        }
        "typeIs" => {
            arity(args, 2)?;
            Value::Bool(type_of(&args[1]) == s(0))
        }
        other => return Err(unsupported(other)),
    })
}

/// A version as Masterminds' semver reads it: `v` optional, missing parts 0, a pre-release
/// after `-`, build metadata after `+` ignored.
fn parse_version(text: &str) -> Option<([u64; 3], Option<String>)> {
    let text = text.trim().trim_start_matches(['v', '=']).trim();
    let text = text.split('+').next()?;
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) => (core, Some(pre.to_string())),
        None => (text, None),
    };
    let mut parts = [0u64; 3];
    for (i, p) in core.split('.').enumerate() {
        if i >= 3 {
            return None;
        }
        parts[i] = if matches!(p, "x" | "X" | "*") { 0 } else { p.parse().ok()? };
    }
    Some((parts, pre))
}

fn version_cmp(a: &([u64; 3], Option<String>), b: &([u64; 3], Option<String>)) -> Ordering {
    a.0.cmp(&b.0).then_with(|| match (&a.1, &b.1) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(y),
    })
}

/// Masterminds' constraint check: `||` between alternatives, `,` or spaces between the
/// comparisons of one; `=`, `!=`, `>`, `<`, `>=`, `<=`, `~` and `^`. A version with a
/// pre-release matches only a constraint that names one (such as `>=1.21-0`), as there.
pub fn semver_matches(constraint: &str, version: &str) -> Result<bool, String> {
    let v = parse_version(version).ok_or_else(|| format!("{version:?} is not a version"))?;
    for alternative in constraint.split("||") {
        let mut all = true;
        let mut any = false;
        for part in alternative.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
            any = true;
            let part = part.trim();
            let op_len = part.find(|c: char| c.is_ascii_digit() || c == 'v').unwrap_or(part.len());
            let (op, target) = part.split_at(op_len);
            let t = parse_version(target)
                .ok_or_else(|| format!("{constraint:?} is not a constraint"))?;
            if v.1.is_some() && t.1.is_none() {
                all = false;
                break;
            }
            let order = version_cmp(&v, &t);
            let ok = match op.trim() {
                "" | "=" => order == Ordering::Equal,
                "!=" => order != Ordering::Equal,
                ">" => order == Ordering::Greater,
                "<" => order == Ordering::Less,
                ">=" | "=>" => order != Ordering::Less,
                "<=" | "=<" => order != Ordering::Greater,
                "~" | "~>" => order != Ordering::Less && v.0[0] == t.0[0] && v.0[1] == t.0[1],
                "^" => order != Ordering::Less && v.0[0] == t.0[0],
                other => return Err(format!("unknown comparison {other:?} in {constraint:?}")),
            };
            if !ok {
                all = false;
                break;
            }
        }
        if any && all {
            return Ok(true);
        }
    }
    Ok(false)
}
