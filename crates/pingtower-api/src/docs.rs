//! `/api/v1/docs`: the API reference as one HTML page rendered from the OpenAPI document at
//! start. Served by the binary itself: no script, no font, nothing from a CDN.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, RefOr};

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn operation(out: &mut String, method: &str, path: &str, op: &Operation) {
    let anchor = format!("{method}-{path}").replace(['/', '{', '}'], "-");
    out.push_str(&format!(
        "<section id=\"{}\"><h3><span class=\"m {m}\">{M}</span> <code>{}</code></h3>",
        esc(&anchor),
        esc(path),
        m = method,
        M = method.to_uppercase(),
    ));
    if let Some(s) = &op.summary {
        out.push_str(&format!("<p>{}</p>", esc(s)));
    }
    if let Some(d) = &op.description
        && op.summary.as_deref() != Some(d.as_str())
    {
        out.push_str(&format!("<p>{}</p>", esc(d)));
    }
    if op.security.as_ref().is_some_and(|s| {
        s.iter().all(|r| {
            serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
        })
    }) {
        out.push_str("<p><em>No login needed.</em></p>");
    }
    if let Some(params) = op.parameters.as_ref().filter(|p| !p.is_empty()) {
        out.push_str("<table><tr><th>parameter</th><th>in</th><th>meaning</th></tr>");
        for p in params {
            let place = match p.parameter_in {
                ParameterIn::Query => "query",
                ParameterIn::Path => "path",
                ParameterIn::Header => "header",
                ParameterIn::Cookie => "cookie",
            };
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{place}</td><td>{}</td></tr>",
                esc(&p.name),
                esc(p.description.as_deref().unwrap_or(""))
            ));
        }
        out.push_str("</table>");
    }
    if let Some(body) = &op.request_body {
        let schema = body
            .content
            .get("application/json")
            .and_then(|c| c.schema.as_ref())
            .map(|s| match s {
                RefOr::Ref(r) => r.ref_location.rsplit('/').next().unwrap_or("").to_owned(),
                RefOr::T(_) => "object".to_owned(),
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "<p>Body: JSON <a href=\"#schema-{0}\"><code>{0}</code></a></p>",
            esc(&schema)
        ));
    }
    let codes: Vec<String> = op
        .responses
        .responses
        .iter()
        .map(|(code, r)| {
            let target = match r {
                RefOr::T(resp) => resp
                    .content
                    .values()
                    .next()
                    .and_then(|c| c.schema.as_ref())
                    .and_then(|s| match s {
                        RefOr::Ref(r) => r.ref_location.rsplit('/').next().map(str::to_owned),
                        RefOr::T(_) => None,
                    }),
                RefOr::Ref(_) => None,
            };
            match target {
                Some(t) => format!(
                    "<code>{}</code> <a href=\"#schema-{1}\">{1}</a>",
                    esc(code),
                    esc(&t)
                ),
                None => format!("<code>{}</code>", esc(code)),
            }
        })
        .collect();
    out.push_str(&format!("<p>Answers: {}</p></section>", codes.join(", ")));
}

/// The whole page.
pub fn render(api: &OpenApi) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>PingTower API</title><style>\
         :root{color-scheme:light dark;font-family:system-ui,sans-serif;line-height:1.45}\
         body{max-width:60rem;margin:auto;padding:1rem}\
         code,pre{font-family:ui-monospace,monospace}\
         section{border-top:1px solid #8884;padding:.4rem 0}\
         h3{font-size:1rem;margin:.5rem 0}\
         .m{display:inline-block;min-width:4.2rem;text-align:center;border-radius:4px;padding:0 .3rem;color:#fff;background:#555}\
         .get{background:#2563eb}.post{background:#16a34a}.patch{background:#ca8a04}.delete{background:#dc2626}\
         table{border-collapse:collapse}td,th{border:1px solid #8884;padding:.15rem .5rem;text-align:left}\
         pre{overflow:auto;background:#8881;padding:.5rem}</style></head><body>",
    );
    out.push_str(&format!(
        "<h1>{}</h1><p>{}</p><p>Machine-readable: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> (OpenAPI {}).</p>",
        esc(&api.info.title),
        esc(api.info.description.as_deref().unwrap_or("")),
        esc(&serde_json::to_value(&api.openapi).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()),
    ));
    out.push_str("<h2>Endpoints</h2>");
    for (path, item) in &api.paths.paths {
        let ops = [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                operation(&mut out, method, path, op);
            }
        }
    }
    if let Some(components) = &api.components {
        out.push_str("<h2>Schemas</h2>");
        for (name, schema) in &components.schemas {
            let json = serde_json::to_string_pretty(schema).unwrap_or_default();
            out.push_str(&format!(
                "<section id=\"schema-{0}\"><h3><code>{0}</code></h3><pre>{1}</pre></section>",
                esc(name),
                esc(&json)
            ));
        }
    }
    out.push_str("</body></html>");
    out
}
