//! The assertion language: one assertion per string, such as `status in 200..299`,
//! `response_time < 300ms`, `body contains "ok"`, `json.items[0].count > 0`,
//! `header["content-type"] contains "json"`, `cert.expires_in > 14d`,
//! `dns.answers contains "127.0.0.1"`.
//!
//! Parsing never panics (a property test feeds it arbitrary input); an error names the character
//! position and what was expected there. Evaluation reads the facts a check gathered.

use crate::MonitorKind;
use std::fmt;

/// What an assertion looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Status,
    ResponseTime,
    Body,
    Json(Vec<PathSeg>),
    Header(String),
    CertExpiresIn,
    DnsAnswers,
    DnsRcode,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    NotContains,
    Matches,
    NotMatches,
}

/// The right-hand side.
#[derive(Debug, Clone)]
pub enum Operand {
    Number(f64),
    /// Milliseconds.
    Duration(f64),
    Str(String),
    Bool(bool),
    Null,
    Range(f64, f64),
    Regex(regex::Regex),
}

/// A parsed assertion.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub source: String,
    pub subject: Subject,
    pub op: Op,
    pub operand: Operand,
}

/// Why an assertion did not parse: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based character position.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Regular expressions are limited in size so that a hostile pattern cannot eat memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

struct Lexer<'a> {
    chars: Vec<(usize, char)>,
    pos: usize,
    _src: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            chars: src.char_indices().collect(),
            pos: 0,
            _src: src,
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|(_, c)| *c)
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).map(|(_, c)| *c)
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            position: self.pos + 1,
            message: message.into(),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    fn ident(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        {
            s.push(c);
            self.pos += 1;
        }
        s
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.expect('"', "a string in double quotes")?;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string: expected a closing `\"`")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ ('"' | '\\')) => {
                            s.push(c);
                            self.pos += 1;
                        }
                        _ => return Err(self.error("expected `\\\"` or `\\\\` after a backslash")),
                    }
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A number with an optional duration unit. Returns (value, unit in ms if any).
    fn number(&mut self) -> Result<(f64, Option<f64>), ParseError> {
        let start = self.pos;
        let mut text = String::new();
        if self.peek() == Some('-') {
            text.push('-');
            self.pos += 1;
        }
        let mut seen_digit = false;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                seen_digit = true;
            } else if c == '.'
                && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())
                && !text.contains('.')
            {
            } else {
                break;
            }
            text.push(c);
            self.pos += 1;
        }
        if !seen_digit {
            self.pos = start;
            return Err(self.error("expected a number"));
        }
        let value: f64 = text.parse().map_err(|_| ParseError {
            position: start + 1,
            message: "expected a number".into(),
        })?;
        let unit_start = self.pos;
        let unit = self.ident();
        let factor = match unit.as_str() {
            "" => None,
            "ms" => Some(1.0),
            "s" => Some(1_000.0),
            "m" => Some(60_000.0),
            "h" => Some(3_600_000.0),
            "d" => Some(86_400_000.0),
            other => {
                self.pos = unit_start;
                return Err(
                    self.error(format!("unknown unit `{other}`; expected ms, s, m, h or d"))
                );
            }
        };
        Ok((value, factor))
    }
}

impl Assertion {
    /// Parses one assertion.
    pub fn parse(src: &str) -> Result<Self, ParseError> {
        let mut lx = Lexer::new(src);
        lx.skip_ws();
        let subject = parse_subject(&mut lx)?;
        lx.skip_ws();
        let op = parse_op(&mut lx)?;
        lx.skip_ws();
        let operand = parse_operand(&mut lx, &subject, op)?;
        lx.skip_ws();
        if lx.peek().is_some() {
            return Err(lx.error("unexpected text after the assertion"));
        }
        Ok(Self {
            source: src.trim().to_owned(),
            subject,
            op,
            operand,
        })
    }

    /// Whether this assertion can apply to a check of `kind`; an error says why not.
    pub fn check_kind(&self, kind: MonitorKind) -> Result<(), String> {
        use MonitorKind as K;
        let ok = match &self.subject {
            Subject::ResponseTime => !matches!(kind, K::Heartbeat | K::Event),
            Subject::Status | Subject::Body | Subject::Json(_) | Subject::Header(_) => {
                kind == K::Http
            }
            Subject::CertExpiresIn => matches!(kind, K::Http | K::Tls),
            Subject::DnsAnswers | Subject::DnsRcode => kind == K::Dns,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`{}` does not apply to {kind} monitors",
                subject_name(&self.subject)
            ))
        }
    }
}

fn subject_name(s: &Subject) -> &'static str {
    match s {
        Subject::Status => "status",
        Subject::ResponseTime => "response_time",
        Subject::Body => "body",
        Subject::Json(_) => "json",
        Subject::Header(_) => "header",
        Subject::CertExpiresIn => "cert.expires_in",
        Subject::DnsAnswers => "dns.answers",
        Subject::DnsRcode => "dns.rcode",
    }
}

const SUBJECTS: &str = "status, response_time, body, json.PATH, header[\"NAME\"], cert.expires_in, dns.answers or dns.rcode";

fn parse_subject(lx: &mut Lexer<'_>) -> Result<Subject, ParseError> {
    let start = lx.pos;
    let word = lx.ident();
    let subject = match word.as_str() {
        "status" => Subject::Status,
        "response_time" => Subject::ResponseTime,
        "body" => Subject::Body,
        "json" => {
            let mut path = Vec::new();
            loop {
                if lx.eat('.') {
                    let key = lx.ident();
                    if key.is_empty() {
                        return Err(lx.error("expected a field name after `.`"));
                    }
                    path.push(PathSeg::Key(key));
                } else if lx.eat('[') {
                    if lx.peek() == Some('"') {
                        path.push(PathSeg::Key(lx.string()?));
                    } else {
                        let digits_at = lx.pos;
                        let mut digits = String::new();
                        while let Some(c) = lx.peek().filter(char::is_ascii_digit) {
                            digits.push(c);
                            lx.pos += 1;
                        }
                        let index = digits.parse::<usize>().map_err(|_| ParseError {
                            position: digits_at + 1,
                            message: "expected an array index or a quoted key".into(),
                        })?;
                        path.push(PathSeg::Index(index));
                    }
                    lx.expect(']', "`]`")?;
                } else {
                    break;
                }
            }
            if path.is_empty() {
                return Err(lx.error("expected a path after `json`, such as json.status"));
            }
            Subject::Json(path)
        }
        "header" => {
            lx.expect('[', "`[` after header, as in header[\"content-type\"]")?;
            let name = lx.string()?;
            lx.expect(']', "`]`")?;
            Subject::Header(name.to_ascii_lowercase())
        }
        "cert" => {
            lx.expect('.', "`.expires_in` after cert")?;
            let at = lx.pos;
            if lx.ident() != "expires_in" {
                lx.pos = at;
                return Err(lx.error("expected `expires_in` after `cert.`"));
            }
            Subject::CertExpiresIn
        }
        "dns" => {
            lx.expect('.', "`.answers` or `.rcode` after dns")?;
            let at = lx.pos;
            match lx.ident().as_str() {
                "answers" => Subject::DnsAnswers,
                "rcode" => Subject::DnsRcode,
                _ => {
                    lx.pos = at;
                    return Err(lx.error("expected `answers` or `rcode` after `dns.`"));
                }
            }
        }
        _ => {
            lx.pos = start;
            return Err(lx.error(format!("expected a subject: {SUBJECTS}")));
        }
    };
    Ok(subject)
}

fn parse_op(lx: &mut Lexer<'_>) -> Result<Op, ParseError> {
    let two: String = [lx.peek(), lx.peek_at(1)].iter().flatten().collect();
    let symbolic = match two.as_str() {
        "==" => Some((Op::Eq, 2)),
        "!=" => Some((Op::Ne, 2)),
        "<=" => Some((Op::Le, 2)),
        ">=" => Some((Op::Ge, 2)),
        _ => match lx.peek() {
            Some('<') => Some((Op::Lt, 1)),
            Some('>') => Some((Op::Gt, 1)),
            _ => None,
        },
    };
    if let Some((op, len)) = symbolic {
        lx.pos += len;
        return Ok(op);
    }
    let start = lx.pos;
    let word = lx.ident();
    let op = match word.as_str() {
        "in" => Op::In,
        "contains" => Op::Contains,
        "matches" => Op::Matches,
        "not" => {
            lx.skip_ws();
            let at = lx.pos;
            match lx.ident().as_str() {
                "contains" => Op::NotContains,
                "matches" => Op::NotMatches,
                _ => {
                    lx.pos = at;
                    return Err(lx.error("expected `contains` or `matches` after `not`"));
                }
            }
        }
        _ => {
            lx.pos = start;
            return Err(lx.error("expected an operator: ==, !=, <, <=, >, >=, in, contains, not contains, matches, not matches"));
        }
    };
    Ok(op)
}

fn parse_operand(lx: &mut Lexer<'_>, subject: &Subject, op: Op) -> Result<Operand, ParseError> {
    let at = lx.pos;
    let fail = |message: String| ParseError {
        position: at + 1,
        message,
    };
    let is_time = matches!(subject, Subject::ResponseTime | Subject::CertExpiresIn);
    match op {
        Op::Matches | Op::NotMatches => {
            let pattern = lx.string()?;
            let re = regex::RegexBuilder::new(&pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| fail(format!("invalid regular expression: {e}")))?;
            Ok(Operand::Regex(re))
        }
        Op::Contains | Op::NotContains => {
            if !matches!(
                subject,
                Subject::Body | Subject::Json(_) | Subject::Header(_) | Subject::DnsAnswers
            ) {
                return Err(fail(format!(
                    "`{}` cannot be used with contains",
                    subject_name(subject)
                )));
            }
            Ok(Operand::Str(lx.string()?))
        }
        Op::In => {
            let (lo, lo_unit) = lx.number()?;
            if !(lx.eat('.') && lx.eat('.')) {
                return Err(lx.error("expected `..` in a range such as 200..299"));
            }
            let (hi, hi_unit) = lx.number()?;
            if is_time != lo_unit.is_some() || lo_unit.is_some() != hi_unit.is_some() {
                return Err(fail(if is_time {
                    "expected durations such as 100ms..2s".into()
                } else {
                    "expected numbers such as 200..299".into()
                }));
            }
            let (lo, hi) = (lo * lo_unit.unwrap_or(1.0), hi * hi_unit.unwrap_or(1.0));
            if lo > hi {
                return Err(fail("the range's start is after its end".into()));
            }
            Ok(Operand::Range(lo, hi))
        }
        Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let ordering = !matches!(op, Op::Eq | Op::Ne);
            match subject {
                Subject::Status => {
                    let (n, unit) = lx.number()?;
                    if unit.is_some() {
                        return Err(fail("a status code has no unit".into()));
                    }
                    Ok(Operand::Number(n))
                }
                Subject::ResponseTime | Subject::CertExpiresIn => match lx.number()? {
                    (n, Some(factor)) => Ok(Operand::Duration(n * factor)),
                    (_, None) => Err(fail(
                        "expected a duration with a unit, such as 300ms or 14d".into(),
                    )),
                },
                Subject::Body | Subject::Header(_) | Subject::DnsRcode | Subject::DnsAnswers => {
                    if ordering {
                        return Err(fail(format!(
                            "`{}` is text: use ==, !=, contains or matches",
                            subject_name(subject)
                        )));
                    }
                    Ok(Operand::Str(lx.string()?))
                }
                Subject::Json(_) => match lx.peek() {
                    Some('"') if !ordering => Ok(Operand::Str(lx.string()?)),
                    Some(c) if c.is_ascii_digit() || c == '-' => match lx.number()? {
                        (n, None) => Ok(Operand::Number(n)),
                        _ => Err(fail("a JSON value has no unit".into())),
                    },
                    _ if !ordering => {
                        let word = lx.ident();
                        match word.as_str() {
                            "true" => Ok(Operand::Bool(true)),
                            "false" => Ok(Operand::Bool(false)),
                            "null" => Ok(Operand::Null),
                            _ => Err(fail(
                                "expected a string, a number, true, false or null".into(),
                            )),
                        }
                    }
                    _ => Err(fail("expected a number".into())),
                },
            }
        }
    }
}

/// What a check observed, for assertions to judge.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub status: Option<u16>,
    pub response_time_ms: f64,
    pub body: Option<String>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub cert_expires_in_ms: Option<f64>,
    pub dns_answers: Option<Vec<String>>,
    pub dns_rcode: Option<String>,
}

/// The outcome of one assertion.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AssertionOutcome {
    pub assertion: String,
    pub passed: bool,
    /// What was actually seen (shortened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

fn short(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

fn compare(a: f64, op: Op, operand: &Operand) -> bool {
    match (op, operand) {
        (Op::In, Operand::Range(lo, hi)) => *lo <= a && a <= *hi,
        (_, Operand::Number(b) | Operand::Duration(b)) => match op {
            Op::Eq => (a - b).abs() < f64::EPSILON,
            Op::Ne => (a - b).abs() >= f64::EPSILON,
            Op::Lt => a < *b,
            Op::Le => a <= *b,
            Op::Gt => a > *b,
            Op::Ge => a >= *b,
            _ => false,
        },
        _ => false,
    }
}

fn text_test(s: &str, op: Op, operand: &Operand) -> bool {
    match (op, operand) {
        (Op::Eq, Operand::Str(b)) => s == b,
        (Op::Ne, Operand::Str(b)) => s != b,
        (Op::Contains, Operand::Str(b)) => s.contains(b.as_str()),
        (Op::NotContains, Operand::Str(b)) => !s.contains(b.as_str()),
        (Op::Matches, Operand::Regex(re)) => re.is_match(s),
        (Op::NotMatches, Operand::Regex(re)) => !re.is_match(s),
        _ => false,
    }
}

fn json_at<'v>(mut v: &'v serde_json::Value, path: &[PathSeg]) -> Option<&'v serde_json::Value> {
    for seg in path {
        v = match seg {
            PathSeg::Key(k) => v.get(k)?,
            PathSeg::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

impl Assertion {
    /// Judges the facts. `json` is the body parsed once by the caller, if it is JSON.
    pub fn evaluate(&self, facts: &Facts, json: Option<&serde_json::Value>) -> AssertionOutcome {
        let (passed, actual) = match &self.subject {
            Subject::Status => match facts.status {
                Some(s) => (
                    compare(f64::from(s), self.op, &self.operand),
                    Some(s.to_string()),
                ),
                None => (false, None),
            },
            Subject::ResponseTime => {
                let ms = facts.response_time_ms;
                (
                    compare(ms, self.op, &self.operand),
                    Some(format!("{ms:.0}ms")),
                )
            }
            Subject::CertExpiresIn => match facts.cert_expires_in_ms {
                Some(ms) => (
                    compare(ms, self.op, &self.operand),
                    Some(format!("{:.1}d", ms / 86_400_000.0)),
                ),
                None => (false, Some("no certificate".into())),
            },
            Subject::Body => match &facts.body {
                Some(b) => (text_test(b, self.op, &self.operand), Some(short(b))),
                None => (false, None),
            },
            Subject::Header(name) => match facts.headers.iter().find(|(n, _)| n == name) {
                Some((_, v)) => (text_test(v, self.op, &self.operand), Some(short(v))),
                None => (
                    matches!(self.op, Op::Ne | Op::NotContains | Op::NotMatches),
                    Some("absent".into()),
                ),
            },
            Subject::Json(path) => match json.and_then(|j| json_at(j, path)) {
                // An absent field counts as null, so `json.x == null` means "not set".
                None if json.is_some() => (
                    matches!(self.operand, Operand::Null) && self.op == Op::Eq,
                    Some("absent".into()),
                ),
                None => (false, Some("body is not JSON".into())),
                Some(v) => {
                    let passed = match (v, &self.operand) {
                        (serde_json::Value::Number(n), _) => n
                            .as_f64()
                            .is_some_and(|n| compare(n, self.op, &self.operand)),
                        (serde_json::Value::String(s), Operand::Str(_) | Operand::Regex(_)) => {
                            text_test(s, self.op, &self.operand)
                        }
                        (serde_json::Value::Bool(b), Operand::Bool(want)) => match self.op {
                            Op::Eq => b == want,
                            Op::Ne => b != want,
                            _ => false,
                        },
                        (serde_json::Value::Null, Operand::Null) => self.op == Op::Eq,
                        (_, Operand::Null) => self.op == Op::Ne,
                        (other, _) => match self.op {
                            Op::Contains | Op::NotContains | Op::Matches | Op::NotMatches => {
                                text_test(&other.to_string(), self.op, &self.operand)
                            }
                            Op::Ne => true,
                            _ => false,
                        },
                    };
                    (passed, Some(short(&v.to_string())))
                }
            },
            Subject::DnsAnswers => match &facts.dns_answers {
                Some(answers) => {
                    let passed = match (self.op, &self.operand) {
                        (Op::Contains, Operand::Str(s)) => answers.iter().any(|a| a == s),
                        (Op::NotContains, Operand::Str(s)) => !answers.iter().any(|a| a == s),
                        (Op::Matches, Operand::Regex(re)) => answers.iter().any(|a| re.is_match(a)),
                        (Op::NotMatches, Operand::Regex(re)) => {
                            !answers.iter().any(|a| re.is_match(a))
                        }
                        (Op::Eq, Operand::Str(s)) => answers.len() == 1 && answers[0] == *s,
                        (Op::Ne, Operand::Str(s)) => !(answers.len() == 1 && answers[0] == *s),
                        _ => false,
                    };
                    (passed, Some(short(&answers.join(", "))))
                }
                None => (false, None),
            },
            Subject::DnsRcode => match &facts.dns_rcode {
                Some(rc) => (text_test(rc, self.op, &self.operand), Some(rc.clone())),
                None => (false, None),
            },
        };
        AssertionOutcome {
            assertion: self.source.clone(),
            passed,
            actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            status: Some(200),
            response_time_ms: 120.0,
            body: Some(r#"{"status":"UP","items":[{"count":3}],"ok":true,"v":"v12"}"#.into()),
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            cert_expires_in_ms: Some(30.0 * 86_400_000.0),
            dns_answers: Some(vec!["127.0.0.1".into(), "127.0.0.2".into()]),
            dns_rcode: Some("NOERROR".into()),
        }
    }

    fn check(src: &str) -> bool {
        let a = Assertion::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let f = facts();
        let json: Option<serde_json::Value> =
            f.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
        a.evaluate(&f, json.as_ref()).passed
    }

    #[test]
    fn the_documented_examples_hold() {
        for src in [
            "status == 200",
            "status in 200..299",
            "status != 503",
            "response_time < 300ms",
            "response_time in 100ms..1s",
            "body contains \"UP\"",
            "body not contains \"error\"",
            "body matches \"v[0-9]+\"",
            "body not matches \"v[a-z]+\\\\d\"",
            "json.status == \"UP\"",
            "json.items[0].count > 0",
            "json[\"ok\"] == true",
            "json.missing == null",
            "header[\"Content-Type\"] contains \"json\"",
            "cert.expires_in > 14d",
            "dns.answers contains \"127.0.0.1\"",
            "dns.rcode == \"NOERROR\"",
        ] {
            assert!(check(src), "{src} should hold");
        }
    }

    #[test]
    fn failing_assertions_fail_and_say_what_was_seen() {
        for src in [
            "status == 500",
            "response_time < 100ms",
            "json.items[0].count >= 4",
            "cert.expires_in > 60d",
            "header[\"x-none\"] == \"a\"",
        ] {
            assert!(!check(src), "{src} should fail");
        }
        let a = Assertion::parse("status == 500").unwrap();
        let out = a.evaluate(&facts(), None);
        assert_eq!(out.actual.as_deref(), Some("200"));
    }

    #[test]
    fn errors_name_the_position_and_the_expectation() {
        let cases = [
            ("stat == 200", 1, "expected a subject"),
            ("status === 200", 10, "expected a number"),
            ("status == 200 x", 15, "unexpected text"),
            ("response_time < 300", 17, "duration with a unit"),
            ("response_time < 3y", 18, "unknown unit `y`"),
            ("body contains ok", 15, "string in double quotes"),
            ("body matches \"(\"", 14, "invalid regular expression"),
            ("status in 299..200", 11, "start is after its end"),
            ("body contains \"open", 20, "unterminated string"),
            (
                "header[content-type] == \"x\"",
                8,
                "string in double quotes",
            ),
            ("body < \"x\"", 8, "is text"),
            ("status contains \"2\"", 17, "cannot be used with contains"),
            ("", 1, "expected a subject"),
        ];
        for (src, position, needle) in cases {
            let e = Assertion::parse(src).expect_err(src);
            assert!(e.message.contains(needle), "{src}: {e}");
            assert_eq!(e.position, position, "{src}: {e}");
        }
    }

    #[test]
    fn subjects_apply_to_their_kinds() {
        let a = Assertion::parse("status == 200").unwrap();
        assert!(a.check_kind(MonitorKind::Http).is_ok());
        assert!(a.check_kind(MonitorKind::Tcp).unwrap_err().contains("tcp"));
        assert!(
            Assertion::parse("cert.expires_in > 1d")
                .unwrap()
                .check_kind(MonitorKind::Tls)
                .is_ok()
        );
        assert!(
            Assertion::parse("dns.rcode == \"NOERROR\"")
                .unwrap()
                .check_kind(MonitorKind::Http)
                .is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(src in "\\PC{0,60}") {
            let _ = Assertion::parse(&src);
        }

        #[test]
        fn parsing_never_panics_on_near_misses(
            subject in "(status|response_time|body|json\\.[a-z\\[\\]0-9\"]{0,8}|header\\[\"?[a-z-]{0,6}\"?\\]?|cert\\.expires_in|dns\\.(answers|rcode)|x)",
            op in "(==|!=|<|<=|>|>=|in|contains|not contains|matches|not|=)",
            value in "(-?[0-9]{0,4}(\\.[0-9]{0,2})?(ms|s|m|h|d|y)?(\\.\\.-?[0-9]{0,4}[a-z]{0,2})?|\"[^\"]{0,6}\"?|true|null|\\\\)",
        ) {
            let src = format!("{subject} {op} {value}");
            if let Ok(a) = Assertion::parse(&src) {
                let _ = a.evaluate(&Facts::default(), None);
            }
        }
    }
}
