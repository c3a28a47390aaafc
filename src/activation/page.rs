//! The activation page: one small, accessible HTML page per outcome, every value escaped.

use minijinja::{AutoEscape, Environment, context};

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; color: #1a1a1a; }
button { font-size: 1.1rem; padding: 0.6rem 1.6rem; border-radius: 0.3rem; border: 2px solid #1d4ed8; background: #1d4ed8; color: #fff; cursor: pointer; }
button:focus { outline: 3px solid #f59e0b; outline-offset: 2px; }
</style>
</head>
<body>
<main>
<h1 id="outcome" data-outcome="{{ outcome }}">{{ title }}</h1>
{% for paragraph in paragraphs %}<p>{{ paragraph }}</p>
{% endfor %}{% if form %}<form method="post">
<button type="submit" id="activate">Activate</button>
</form>
{% endif %}</main>
</body>
</html>
"#;

/// A page: a machine-readable outcome (`data-outcome`), a title and its paragraphs (plain text,
/// escaped), and whether it offers the Activate button (a form that POSTs to the page's own URL).
pub struct Page {
    pub outcome: &'static str,
    pub title: String,
    pub paragraphs: Vec<String>,
    pub form: bool,
}

impl Page {
    pub fn render(&self) -> String {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_template("page.html", PAGE)
            .expect("the page template parses");
        env.get_template("page.html")
            .and_then(|t| {
                t.render(context! {
                    outcome => self.outcome,
                    title => &self.title,
                    paragraphs => &self.paragraphs,
                    form => self.form,
                })
            })
            .expect("the page renders")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_on_the_page_is_escaped() {
        let hostile = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)> & 'q'"#;
        let html = Page {
            outcome: "valid",
            title: format!("Activate {hostile}"),
            paragraphs: vec![format!("{hostile}'s tenant")],
            form: true,
        }
        .render();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(html.contains("&amp; &#x27;q&#x27;"), "{html}");
        assert!(html.contains(r#"<button type="submit" id="activate">Activate</button>"#));
        assert!(html.contains(r#"<html lang="en">"#));
        let without = Page {
            outcome: "unknown",
            title: "This link is not valid".into(),
            paragraphs: vec![],
            form: false,
        }
        .render();
        assert!(!without.contains("<form"));
    }
}
