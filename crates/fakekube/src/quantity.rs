//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2k`, `1e3`): parsing, addition,
//! comparison and the canonical text the real server writes back (`1000m` -> `1`,
//! `1536Mi`, `1500m`), with nano precision.

use std::cmp::Ordering;

use serde_json::Value;

/// How a quantity prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

/// A quantity in units of 10^-9.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

/// The message of the decoding error for a malformed quantity.
pub const REGEX_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

const NANO: i128 = 1_000_000_000;

impl Quantity {
    pub fn zero() -> Self {
        Quantity { nanos: 0, format: Format::DecimalSI }
    }

    pub fn from_int(n: i64) -> Self {
        Quantity { nanos: i128::from(n) * NANO, format: Format::DecimalSI }
    }

    /// Parses a quantity string (or a JSON number).
    pub fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Self::parse(s),
            Value::Number(n) => Self::parse(&n.to_string()),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (neg, body) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let split = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
        let (num, suffix) = body.split_at(split);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let digits = format!("{int_part}{frac_part}");
        let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        let frac = frac_part.len() as i32;
        // value = mantissa * 10^(exp10 - frac) * 2^(exp2)
        let (exp10, exp2, format) = match suffix {
            "" => (0, 0, Format::DecimalSI),
            "n" => (-9, 0, Format::DecimalSI),
            "u" => (-6, 0, Format::DecimalSI),
            "m" => (-3, 0, Format::DecimalSI),
            "k" => (3, 0, Format::DecimalSI),
            "M" => (6, 0, Format::DecimalSI),
            "G" => (9, 0, Format::DecimalSI),
            "T" => (12, 0, Format::DecimalSI),
            "P" => (15, 0, Format::DecimalSI),
            "E" => (18, 0, Format::DecimalSI),
            "Ki" => (0, 10, Format::BinarySI),
            "Mi" => (0, 20, Format::BinarySI),
            "Gi" => (0, 30, Format::BinarySI),
            "Ti" => (0, 40, Format::BinarySI),
            "Pi" => (0, 50, Format::BinarySI),
            "Ei" => (0, 60, Format::BinarySI),
            e if e.starts_with(['e', 'E']) => {
                let n: i32 = e[1..].parse().ok()?;
                (n, 0, Format::DecimalExponent)
            }
            _ => return None,
        };
        let mut value = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
        let scale = exp10 - frac + 9;
        if scale >= 0 {
            value = value.checked_mul(10i128.checked_pow(scale as u32)?)?;
        } else {
            let d = 10i128.checked_pow((-scale) as u32)?;
            value = (value + d - 1) / d; // rounds up to the nano, as Kubernetes does
        }
        Some(Quantity { nanos: if neg { -value } else { value }, format })
    }

    /// `q.Add(other)`: the sum keeps this quantity's format unless this one is zero.
    pub fn add(&self, other: &Quantity) -> Quantity {
        let format = if self.nanos == 0 { other.format } else { self.format };
        Quantity { nanos: self.nanos + other.nanos, format }
    }

    pub fn max(self, other: Quantity) -> Quantity {
        if other.nanos > self.nanos { other } else { self }
    }

    /// The canonical string (`Quantity.String()`).
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_string();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.abs();
        let mut format = self.format;
        if format == Format::BinarySI && (abs < 1024 * NANO || abs % NANO != 0) {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut units = abs / NANO;
            let mut k = 0;
            while k < 6 && units % 1024 == 0 {
                units /= 1024;
                k += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
            return format!("{sign}{units}{suffix}");
        }
        // Largest exponent (a multiple of 3, -9..=18) that leaves an integer mantissa.
        let mut exp = -9i32;
        let mut mantissa = abs;
        while exp < 18 && mantissa % 1000 == 0 {
            mantissa /= 1000;
            exp += 3;
        }
        let suffix = match format {
            Format::DecimalExponent => {
                if exp == 0 {
                    String::new()
                } else {
                    format!("e{exp}")
                }
            }
            _ => match exp {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            }
            .to_string(),
        };
        format!("{sign}{mantissa}{suffix}")
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Rewrites every quantity of a resource map (`{"cpu": "1000m"}`) in canonical form;
/// `Err` when one does not parse.
pub fn canonicalize_map(map: &mut Value) -> Result<(), String> {
    let Some(m) = map.as_object_mut() else { return Ok(()) };
    for v in m.values_mut() {
        if v.is_null() {
            continue;
        }
        let q = Quantity::from_json(v).ok_or_else(|| REGEX_MSG.to_string())?;
        *v = Value::String(q.canonical());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        Quantity::parse(s).unwrap().canonical()
    }

    #[test]
    fn quantities_parse_and_print_canonically() {
        assert_eq!(c("1000m"), "1");
        assert_eq!(c("1500m"), "1500m");
        assert_eq!(c("0.5"), "500m");
        assert_eq!(c("2"), "2");
        assert_eq!(c("2000"), "2k");
        assert_eq!(c("1.5Gi"), "1536Mi");
        assert_eq!(c("1024Mi"), "1Gi");
        assert_eq!(c("512"), "512");
        assert_eq!(c("100Ki"), "100Ki");
        assert_eq!(c("1e3"), "1e3");
        assert_eq!(c("1.5k"), "1500");
        assert_eq!(c("128M"), "128M");
        assert_eq!(c("0"), "0");
        assert_eq!(c("0.1m"), "100u");
        assert!(Quantity::parse("abc").is_none());
        assert!(Quantity::parse("1Xi").is_none());
        assert!(Quantity::parse("1..2").is_none());
        let a = Quantity::parse("500m").unwrap();
        let b = Quantity::parse("1500m").unwrap();
        assert_eq!(a.add(&b).canonical(), "2");
        assert!(Quantity::parse("1Gi").unwrap() > Quantity::parse("1G").unwrap());
        assert_eq!(Quantity::zero().add(&Quantity::parse("1Gi").unwrap()).canonical(), "1Gi");
    }
}
