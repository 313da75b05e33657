//! How values turn into text: Go's `%v` (what an action prints), `printf`'s verbs, and the YAML
//! that `toYaml` writes (keys sorted, sequences not indented under their key, as Helm's).

use serde_json::Value;

/// Go's `%v` of a value; `nil` inside a list or map is `<nil>`.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let inner: Vec<String> =
                map.iter().map(|(k, v)| format!("{k}:{}", go_value(v))).collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// What an action prints: `%v`, but a missing value prints nothing (Helm's rendering turns
/// Go's `<no value>` into an empty string).
pub fn output(v: &Value) -> String {
    if v.is_null() { String::new() } else { go_value(v) }
}

pub fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    go_float(n.as_f64().unwrap_or_default())
}

/// Go's `%v` of a float64: the shortest digits, in exponent form when the exponent is below -4
/// or at least 6 (so 1e6 prints `1e+06`, as in Go).
pub fn go_float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f.is_nan() {
        return "NaN".into();
    }
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or_default();
    if (-4..6).contains(&exp) {
        let plain = format!("{f}");
        return plain;
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// Go's `strconv.Quote`: double quotes, with Go's escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `printf`: the verbs `%s %d %v %q %t %f %x %X %c %%`, with flags `-`, `0`, `+`, a width and
/// a precision. A verb without an argument prints `%!v(MISSING)`, and extra arguments
/// `%!(EXTRA ...)`, as Go does.
pub fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero, mut plus) = (false, false, false);
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' | '#' => {}
                _ => break,
            }
            i += 1;
        }
        let mut width = None;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            i += 1;
        }
        let mut precision = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = 0;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                i += 1;
            }
            precision = Some(p);
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let text = match verb {
            'v' | 's' => match (arg, precision) {
                (Value::String(s), Some(p)) => s.chars().take(p).collect(),
                _ => go_value(arg),
            },
            'd' => match as_integer(arg) {
                Some(n) if plus && n >= 0 => format!("+{n}"),
                Some(n) => n.to_string(),
                None => format!("%!d({})", go_value(arg)),
            },
            'q' => match arg {
                Value::String(s) => go_quote(s),
                other => go_quote(&go_value(other)),
            },
            't' => match arg {
                Value::Bool(b) => b.to_string(),
                other => format!("%!t({})", go_value(other)),
            },
            'f' | 'F' => match arg.as_f64() {
                Some(f) => format!("{f:.*}", precision.unwrap_or(6)),
                None => format!("%!f({})", go_value(arg)),
            },
            'x' | 'X' => {
                let hex = match arg {
                    Value::String(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                    other => match as_integer(other) {
                        Some(n) => format!("{n:x}"),
                        None => format!("%!x({})", go_value(other)),
                    },
                };
                if verb == 'X' { hex.to_uppercase() } else { hex }
            }
            'c' => as_integer(arg)
                .and_then(|n| u32::try_from(n).ok())
                .and_then(char::from_u32)
                .map_or_else(|| format!("%!c({})", go_value(arg)), String::from),
            other => format!("%!{other}({})", go_value(arg)),
        };
        let len = text.chars().count();
        match width {
            Some(w) if w > len && left => {
                out.push_str(&text);
                out.push_str(&" ".repeat(w - len));
            }
            Some(w) if w > len && zero && matches!(verb, 'd' | 'f' | 'x' | 'X') => {
                let (sign, digits) = match text.strip_prefix('-') {
                    Some(rest) => ("-", rest.to_string()),
                    None => ("", text.clone()),
                };
                out.push_str(sign);
                out.push_str(&"0".repeat(w - len));
                out.push_str(&digits);
            }
            Some(w) if w > len => {
                out.push_str(&" ".repeat(w - len));
                out.push_str(&text);
            }
            _ => out.push_str(&text),
        }
    }
    let extra: Vec<String> = args.map(go_value).collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// An integer value, or a float with no fraction.
pub fn as_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18).map(|f| f as i64)
        }),
        _ => None,
    }
}

/// YAML for `toYaml`: block style, keys sorted, no trailing newline.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(map) if !map.is_empty() => yaml_map(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => yaml_list(items, 0, &mut out),
        scalar => {
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
    out.truncate(out.trim_end_matches('\n').len());
    out
}

fn yaml_map(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (k, v) in map {
        out.push_str(&pad);
        out.push_str(&yaml_string(k));
        out.push(':');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                yaml_map(m, indent + 2, out);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                yaml_list(items, indent, out);
            }
            scalar => {
                out.push(' ');
                out.push_str(&yaml_scalar(scalar));
                out.push('\n');
            }
        }
    }
}

fn yaml_list(items: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        out.push_str(&pad);
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first key on the dash's line, the rest under it.
                let mut nested = String::new();
                yaml_map(m, indent + 2, &mut nested);
                out.push_str(nested.trim_start_matches(' '));
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut nested = String::new();
                yaml_list(inner, indent + 2, &mut nested);
                out.push_str(nested.trim_start_matches(' '));
            }
            scalar => {
                out.push_str(&yaml_scalar(scalar));
                out.push('\n');
            }
        }
    }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => yaml_string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a YAML scalar: plain when it reads back as the same string, else quoted.
fn yaml_string(s: &str) -> String {
    let needs_double = s.chars().any(|c| c.is_control());
    if needs_double {
        return serde_json::to_string(s).unwrap_or_default();
    }
    let reserved = matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "~"
            | "null"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".inf"
            | "-.inf"
            | ".nan"
    );
    let numeric = s.parse::<f64>().is_ok()
        || s.starts_with("0x")
        || s.starts_with("0o")
        || s.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '_' || c == '.' || c == '-')
            && s.chars().any(|c| c.is_ascii_digit());
    let first = s.chars().next().unwrap_or(' ');
    let special_start = "-?:,[]{}#&*!|>'\"%@` ".contains(first);
    let special_inside = s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.ends_with(' ')
        || s.contains('\t');
    if reserved || numeric || special_start || special_inside {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        s.to_string()
    }
}
