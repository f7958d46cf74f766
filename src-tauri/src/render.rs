//! Handbook Markdown to sanitized HTML. Nothing in a handbook can run script
//! or load a remote resource: only formatting tags survive; links, images,
//! raw HTML, event handlers and styles are removed.

use std::collections::HashSet;

pub fn section_html(markdown: &str) -> String {
    let mut opts = pulldown_cmark::Options::empty();
    opts.insert(pulldown_cmark::Options::ENABLE_TABLES);
    opts.insert(pulldown_cmark::Options::ENABLE_STRIKETHROUGH);
    let parser = pulldown_cmark::Parser::new_ext(markdown, opts);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    let tags: HashSet<&str> = [
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "strong",
        "em",
        "b",
        "i",
        "blockquote",
        "code",
        "pre",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "hr",
        "br",
        "del",
    ]
    .into_iter()
    .collect();
    ammonia::Builder::empty()
        .tags(tags)
        .clean_content_tags(
            ["script", "style", "iframe", "object", "svg", "math"]
                .into_iter()
                .collect(),
        )
        .clean(&html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::section_html;

    #[test]
    fn formatting_survives() {
        let h = section_html(
            "**保密**原则\n\n1. 倾听\n2. 转介\n\n> 引用\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        );
        assert!(h.contains("<strong>保密</strong>"), "{h}");
        assert!(
            h.contains("<ol>") && h.contains("<blockquote>") && h.contains("<table>"),
            "{h}"
        );
    }

    #[test]
    fn nothing_can_run_script_or_load_remote_resources() {
        let evil = "<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n[click](javascript:alert(1))\n\n![t](https://evil.example/t.png)\n\n<a href=\"https://evil.example\">x</a> <iframe src=\"https://evil.example\"></iframe>\n\n<p style=\"background:url(https://evil.example)\" onclick=\"x()\">p</p>\n\n<svg><script>alert(1)</script></svg>";
        let h = section_html(evil);
        for bad in [
            "<script",
            "alert(1)</",
            "onerror",
            "javascript:",
            "https://evil",
            "<img",
            "<a ",
            "<iframe",
            "style=",
            "onclick",
            "<svg",
        ] {
            assert!(!h.contains(bad), "{bad} survived in {h}");
        }
        assert!(h.contains("click") && h.contains('p'));
    }
}
