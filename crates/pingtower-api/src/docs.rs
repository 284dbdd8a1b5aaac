//! `/api/v1/docs`: the API reference as one HTML page rendered from the OpenAPI document at
//! start, with a table of contents by tag and the descriptions' Markdown rendered (raw HTML in
//! them is shown as text). Served by the binary itself: no script, no font, nothing from a CDN.

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

/// Markdown as HTML; HTML written in it is shown as text, not interpreted, and links go only
/// to http(s) or within this server.
fn markdown(text: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};
    // Anything else (`javascript:`, `data:`, another scheme) becomes `#`.
    fn safe(url: CowStr<'_>) -> CowStr<'_> {
        let u = url.trim_start().to_ascii_lowercase();
        let ok = u.starts_with("https://")
            || u.starts_with("http://")
            || u.starts_with('#')
            || (u.starts_with('/') && !u.starts_with("//"));
        if ok { url } else { "#".into() }
    }
    let events = Parser::new_ext(text, Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe(dest_url),
            title,
            id,
        }),
        e => e,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

fn anchor_of(method: &str, path: &str) -> String {
    format!("{method}-{path}").replace(['/', '{', '}'], "-")
}

fn operation(out: &mut String, method: &str, path: &str, op: &Operation) {
    let anchor = anchor_of(method, path);
    out.push_str(&format!(
        "<section id=\"{}\"><h3><span class=\"m {m}\">{M}</span> <code>{}</code></h3>",
        esc(&anchor),
        esc(path),
        m = method,
        M = method.to_uppercase(),
    ));
    if let Some(s) = &op.summary {
        out.push_str(&markdown(s));
    }
    if let Some(d) = &op.description
        && op.summary.as_deref() != Some(d.as_str())
    {
        out.push_str(&markdown(d));
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
                markdown(p.description.as_deref().unwrap_or(""))
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

/// An operation as listed: method, path, operation.
type Listed<'a> = (&'a str, &'a str, &'a Operation);

/// The whole page.
pub fn render(api: &OpenApi) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>PingTower API</title><link rel=\"icon\" href=\"/assets/favicon.svg\" type=\"image/svg+xml\"><style>\
         :root{color-scheme:light dark;font-family:system-ui,sans-serif;line-height:1.45}\
         body{max-width:60rem;margin:auto;padding:1rem}\
         code,pre{font-family:ui-monospace,monospace}\
         section{border-top:1px solid #8884;padding:.4rem 0}\
         h3{font-size:1rem;margin:.5rem 0}\
         .m{display:inline-block;min-width:4.2rem;text-align:center;border-radius:4px;padding:0 .3rem;color:#fff;background:#555}\
         .get{background:#1d4ed8}.post{background:#166534}.patch{background:#854d0e}.put{background:#854d0e}.delete{background:#b91c1c}\
         table{border-collapse:collapse}td,th{border:1px solid #8884;padding:.15rem .5rem;text-align:left}\
         td p{margin:0}nav.toc ul{padding-left:1.2rem}nav.toc li{margin:.1rem 0}\
         nav.toc>ul{columns:2 18rem}nav.toc>ul>li{break-inside:avoid}\
         .back{margin:0 0 .5rem}\
         pre{overflow:auto;background:#8881;padding:.5rem}</style></head><body>",
    );
    out.push_str("<p class=\"back\"><a href=\"/\">← Back to the dashboard</a></p><main>");
    out.push_str(&format!(
        "<h1>{}</h1>{}<p>Machine-readable: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> (OpenAPI {}).</p>",
        esc(&api.info.title),
        markdown(api.info.description.as_deref().unwrap_or("")),
        esc(&serde_json::to_value(&api.openapi).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()),
    ));
    // Operations by their first tag, tags in the order they first come.
    let mut tags: Vec<(String, Vec<Listed<'_>>)> = Vec::new();
    for (path, item) in &api.paths.paths {
        let ops = [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let tag = op
                .tags
                .as_ref()
                .and_then(|t| t.first())
                .cloned()
                .unwrap_or_else(|| "other".to_owned());
            match tags.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, list)) => list.push((method, path.as_str(), op)),
                None => tags.push((tag, vec![(method, path.as_str(), op)])),
            }
        }
    }
    out.push_str("<nav class=\"toc\" aria-labelledby=\"toc-h\"><h2 id=\"toc-h\">Contents</h2><ul>");
    for (tag, ops) in &tags {
        out.push_str(&format!(
            "<li><a href=\"#tag-{0}\">{1}</a><ul>",
            esc(&tag.replace(' ', "-")),
            esc(tag)
        ));
        for (method, path, _) in ops {
            out.push_str(&format!(
                "<li><a href=\"#{}\">{} <code>{}</code></a></li>",
                esc(&anchor_of(method, path)),
                method.to_uppercase(),
                esc(path)
            ));
        }
        out.push_str("</ul></li>");
    }
    if api.components.is_some() {
        out.push_str("<li><a href=\"#schemas\">Schemas</a></li>");
    }
    out.push_str("</ul></nav>");
    for (tag, ops) in &tags {
        out.push_str(&format!(
            "<h2 id=\"tag-{}\">{}</h2>",
            esc(&tag.replace(' ', "-")),
            esc(tag)
        ));
        for (method, path, op) in ops {
            operation(&mut out, method, path, op);
        }
    }
    if let Some(components) = &api.components {
        out.push_str("<h2 id=\"schemas\">Schemas</h2>");
        for (name, schema) in &components.schemas {
            let json = serde_json::to_string_pretty(schema).unwrap_or_default();
            out.push_str(&format!(
                "<section id=\"schema-{0}\"><h3><code>{0}</code></h3><pre tabindex=\"0\">{1}</pre></section>",
                esc(name),
                esc(&json)
            ));
        }
    }
    out.push_str("</main></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_html_in_it_is_text() {
        assert_eq!(
            markdown("Use `If-Match`, see **this**."),
            "<p>Use <code>If-Match</code>, see <strong>this</strong>.</p>\n"
        );
        let html = markdown("a <script>alert(1)</script> b");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        let html = markdown("[a](javascript:alert(1)) [b](https://x.test/) [c](/api/v1/docs)");
        assert!(!html.contains("javascript"), "{html}");
        assert!(html.contains(r##"<a href="#">a</a>"##), "{html}");
        assert!(
            html.contains(r#"href="https://x.test/""#) && html.contains(r#"href="/api/v1/docs""#)
        );
    }
}
