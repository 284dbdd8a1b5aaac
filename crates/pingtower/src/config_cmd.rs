//! `pingtower apply` and `pingtower export`: configuration as code, through a running server's
//! API (`POST /api/v1/config/apply`, `GET /api/v1/config`).
//!
//! The server validates and plans; this side reads the YAML, shows the plan, and turns each
//! invalid field's path (`monitors[2].url`) back into the line of the file it came from.

use clap::Args;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code of runtime failures (server unreachable, login refused).
const RUNTIME_FAILURE: u8 = 3;

/// Where the server is and how to log in.
#[derive(Debug, Args)]
pub struct Connection {
    /// The PingTower server
    #[arg(
        long,
        env = "PINGTOWER_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// An API key or login token
    #[arg(long, env = "PINGTOWER_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The YAML file (lists monitors, channels, rules, maintenance, status_pages)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
    /// Print the plan and change nothing
    #[arg(long)]
    dry_run: bool,
    /// Also delete what the file does not name
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, thiserror::Error)]
enum CmdError {
    /// Bad usage or an invalid file: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Anything else: exit 3.
    #[error("{0}")]
    Runtime(String),
}

impl CmdError {
    fn exit(&self) -> ExitCode {
        eprintln!("pingtower: {self}");
        match self {
            CmdError::Usage(_) => ExitCode::from(2),
            CmdError::Runtime(_) => ExitCode::from(RUNTIME_FAILURE),
        }
    }
}

fn client(c: &Connection) -> Result<(reqwest::Client, String, String), CmdError> {
    let token = c.token.clone().ok_or_else(|| {
        CmdError::Usage("no token: set PINGTOWER_TOKEN or --token to an API key".into())
    })?;
    let base = c.server.trim_end_matches('/').to_owned();
    url::Url::parse(&base)
        .map_err(|e| CmdError::Usage(format!("--server `{base}` is not a URL: {e}")))?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| CmdError::Runtime(format!("cannot make an HTTP client: {e}")))?;
    Ok((http, base, token))
}

async fn send(req: reqwest::RequestBuilder, server: &str) -> Result<(u16, Value), CmdError> {
    let r = req
        .send()
        .await
        .map_err(|e| CmdError::Runtime(format!("cannot reach {server}: {e}")))?;
    let status = r.status().as_u16();
    let text = r
        .text()
        .await
        .map_err(|e| CmdError::Runtime(format!("reading the answer of {server}: {e}")))?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn refused(status: u16, body: &Value) -> CmdError {
    let detail = body["detail"]
        .as_str()
        .or(body["title"].as_str())
        .unwrap_or("no detail");
    CmdError::Runtime(format!("the server answered {status}: {detail}"))
}

/// Lines of a YAML document by path (`monitors[2].url`), from the parser's event marks.
fn lines_by_path(text: &str) -> HashMap<String, usize> {
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    use yaml_rust2::scanner::Marker;

    enum Frame {
        Map { key: Option<String> },
        Seq { index: usize },
    }
    struct Sink {
        stack: Vec<(String, Frame)>,
        lines: HashMap<String, usize>,
    }
    impl Sink {
        /// The path of the value about to come, and advances the container it is in.
        fn next_path(&mut self) -> Option<String> {
            let (path, frame) = self.stack.last_mut()?;
            match frame {
                Frame::Map { key } => key.take().map(|k| {
                    if path.is_empty() {
                        k
                    } else {
                        format!("{path}.{k}")
                    }
                }),
                Frame::Seq { index } => {
                    let p = format!("{path}[{index}]");
                    *index += 1;
                    Some(p)
                }
            }
        }
        fn expecting_key(&self) -> bool {
            matches!(self.stack.last(), Some((_, Frame::Map { key: None })))
        }
    }
    impl MarkedEventReceiver for Sink {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            let line = mark.line();
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = if self.stack.is_empty() {
                        String::new()
                    } else {
                        self.next_path().unwrap_or_default()
                    };
                    self.lines.entry(path.clone()).or_insert(line);
                    let frame = if matches!(ev, Event::MappingStart(..)) {
                        Frame::Map { key: None }
                    } else {
                        Frame::Seq { index: 0 }
                    };
                    self.stack.push((path, frame));
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    self.stack.pop();
                }
                Event::Scalar(value, ..) => {
                    if self.expecting_key() {
                        if let Some((path, Frame::Map { key })) = self.stack.last_mut() {
                            let full = if path.is_empty() {
                                value.clone()
                            } else {
                                format!("{path}.{value}")
                            };
                            self.lines.insert(full, line);
                            *key = Some(value);
                        }
                    } else if let Some(p) = self.next_path() {
                        self.lines.entry(p).or_insert(line);
                    }
                }
                Event::Alias(_) => {
                    let _ = self.next_path();
                }
                _ => {}
            }
        }
    }
    let mut sink = Sink {
        stack: Vec::new(),
        lines: HashMap::new(),
    };
    let mut parser = Parser::new_from_str(text);
    let _ = parser.load(&mut sink, false);
    sink.lines
}

/// The deepest nesting `apply` reads (a real file nests 4 or 5 levels).
const MAX_DEPTH: usize = 64;

/// The line where `text` nests deeper than [`MAX_DEPTH`] collections, if it does.
///
/// Checked before the document is parsed for real: that parser (libyaml) takes time quadratic in
/// the depth of nested flow collections (`[[[[…]]]]`: 80,000 levels take 15 s) before its own
/// recursion limit applies. This scanner stops at the first level too deep; it keeps at most
/// 255 flow levels, and reaching its limit is reported as too deep as well. A document it cannot
/// read otherwise is left to the real parser to report.
fn too_deep(text: &str) -> Option<usize> {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return None,
            Ok((Event::MappingStart(..) | Event::SequenceStart(..), mark)) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(mark.line());
                }
            }
            Ok((Event::MappingEnd | Event::SequenceEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
            Err(e) if e.info() == "recursion limit exceeded" => return Some(e.marker().line()),
            Err(_) => return None,
        }
    }
}

/// The line of `path`, or of its nearest ancestor the file has.
fn line_of(lines: &HashMap<String, usize>, path: &str) -> Option<usize> {
    let mut p = path.to_owned();
    loop {
        if let Some(l) = lines.get(&p) {
            return Some(*l);
        }
        let cut = p.rfind(['.', '['])?;
        p.truncate(cut);
    }
}

pub async fn apply(args: ApplyArgs) -> ExitCode {
    match apply_inner(&args).await {
        Ok(code) => code,
        Err(e) => e.exit(),
    }
}

async fn apply_inner(args: &ApplyArgs) -> Result<ExitCode, CmdError> {
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CmdError::Usage(format!("cannot read {file}: {e}")))?;
    if let Some(line) = too_deep(&text) {
        return Err(CmdError::Usage(format!(
            "{file}:{line}: nested deeper than {MAX_DEPTH} levels; a PingTower file needs a few"
        )));
    }
    let doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}", l.line()))
            .unwrap_or_default();
        CmdError::Usage(format!("{file}{at}: not valid YAML: {e}"))
    })?;
    if !doc.is_object() {
        return Err(CmdError::Usage(format!(
            "{file}: the document must be a mapping of monitors, channels, rules, maintenance and status_pages"
        )));
    }
    let (http, base, token) = client(&args.connection)?;
    let req = http
        .post(format!("{base}/api/v1/config/apply"))
        .query(&[("dry_run", args.dry_run), ("prune", args.prune)])
        .bearer_auth(token)
        .json(&doc);
    let (status, body) = send(req, &base).await?;
    match status {
        200 => {}
        422 => {
            let lines = lines_by_path(&text);
            let errors = body["errors"].as_array().cloned().unwrap_or_default();
            eprintln!("{file}: {} error(s); nothing was changed", errors.len());
            for e in errors {
                let field = e["field"].as_str().unwrap_or_default();
                let message = e["message"].as_str().unwrap_or_default();
                match line_of(&lines, field) {
                    Some(line) => eprintln!("{file}:{line}: {field}: {message}"),
                    None => eprintln!("{file}: {field}: {message}"),
                }
            }
            return Ok(ExitCode::from(2));
        }
        _ => return Err(refused(status, &body)),
    }
    let changes = body["changes"].as_array().cloned().unwrap_or_default();
    let count = |a: &str| changes.iter().filter(|c| c["action"] == a).count();
    println!(
        "plan: {} to create, {} to update, {} to delete, {} unchanged",
        count("create"),
        count("update"),
        count("delete"),
        body["unchanged"].as_u64().unwrap_or(0)
    );
    for c in &changes {
        let sign = match c["action"].as_str() {
            Some("create") => "+",
            Some("update") => "~",
            _ => "-",
        };
        println!(
            "  {sign} {} {:?}",
            c["type"].as_str().unwrap_or_default(),
            c["name"].as_str().unwrap_or_default()
        );
    }
    if args.dry_run {
        println!("dry run: nothing was changed");
    } else if changes.is_empty() {
        println!("nothing to do");
    } else {
        println!("applied");
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON value as YAML, with `name` and `kind` first in each item.
fn to_yaml(v: &Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::{Mapping, Value as Y};
    match v {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Number(n) => serde_yaml_ng::to_value(n).unwrap_or(Y::Null),
        Value::String(s) => Y::String(s.clone()),
        Value::Array(items) => Y::Sequence(items.iter().map(to_yaml).collect()),
        Value::Object(o) => {
            let mut m = Mapping::new();
            for first in ["name", "kind"] {
                if let Some(x) = o.get(first) {
                    m.insert(Y::String(first.into()), to_yaml(x));
                }
            }
            for (k, x) in o {
                if k != "name" && k != "kind" {
                    m.insert(Y::String(k.clone()), to_yaml(x));
                }
            }
            Y::Mapping(m)
        }
    }
}

pub async fn export(args: ExportArgs) -> ExitCode {
    match export_inner(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.exit(),
    }
}

async fn export_inner(args: &ExportArgs) -> Result<(), CmdError> {
    let (http, base, token) = client(&args.connection)?;
    let req = http.get(format!("{base}/api/v1/config")).bearer_auth(token);
    let (status, body) = send(req, &base).await?;
    if status != 200 {
        return Err(refused(status, &body));
    }
    // Sections in the order people read them.
    let mut doc = serde_yaml_ng::Mapping::new();
    for section in [
        "monitors",
        "channels",
        "rules",
        "maintenance",
        "status_pages",
    ] {
        if let Some(items) = body.get(section) {
            doc.insert(serde_yaml_ng::Value::String(section.into()), to_yaml(items));
        }
    }
    let text = serde_yaml_ng::to_string(&doc)
        .map_err(|e| CmdError::Runtime(format!("cannot write YAML: {e}")))?;
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_lines() {
        let text = "monitors:\n  - name: a\n    kind: http\n    url: x\n  - name: b\n    assertions:\n      - \"status == 200\"\n      - bad\nrules:\n  - name: r\n    channels: [ops, gone]\n";
        let lines = lines_by_path(text);
        assert_eq!(line_of(&lines, "monitors[0].url"), Some(4));
        assert_eq!(line_of(&lines, "monitors[1].name"), Some(5));
        assert_eq!(line_of(&lines, "monitors[1].assertions[1]"), Some(8));
        assert_eq!(line_of(&lines, "rules[0].channels[1]"), Some(11));
        // A field the file lacks points at its item.
        assert_eq!(line_of(&lines, "monitors[1].url"), Some(5));
    }

    #[test]
    fn nesting_is_bounded_before_parsing() {
        let flow = |n: usize| format!("monitors: {}{}\n", "[".repeat(n), "]".repeat(n));
        // The top-level mapping is one level.
        assert_eq!(too_deep(&flow(MAX_DEPTH - 1)), None);
        assert_eq!(too_deep(&flow(MAX_DEPTH)), Some(1));
        let block: String = (0..MAX_DEPTH)
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect::<String>()
            + &format!("{}b: 1\n", "  ".repeat(MAX_DEPTH));
        assert_eq!(too_deep(&block), Some(MAX_DEPTH + 1));
        // Brackets in strings and comments are not nesting; a valid file passes.
        let text = format!(
            "monitors:\n  - name: \"{}\" # {}\n    assertions: ['body contains \"[[[\"']\n",
            "[".repeat(500),
            "{".repeat(500)
        );
        assert_eq!(too_deep(&text), None);
        // Far deeper than the scanner keeps: refused, at once.
        let started = std::time::Instant::now();
        assert_eq!(too_deep(&flow(1_000_000)), Some(1));
        assert_eq!(
            too_deep(&format!("a: {}1", "{a: ".repeat(1_000_000))),
            Some(1)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Not YAML: left to the parser to report.
        assert_eq!(too_deep("monitors:\n  - name: [unclosed\n"), None);
    }
}
