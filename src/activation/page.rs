//! The activation page: one small, accessible HTML page per outcome, every value escaped,
//! presented as the distributor's (its name, logo and support contact). The template can be
//! replaced as the email templates are: a file named [`FILE`] in `--templates-dir`, checked at
//! startup with every shape of page.

use std::path::Path;
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, context};

use crate::mail::templates::TemplateError;

/// The file in `--templates-dir` that replaces the built-in page.
pub const FILE: &str = "activation-page.html";

/// The built-in page. Variables: `outcome` (a word, also `data-outcome`), `title`,
/// `paragraphs` (plain text), `form` (whether to offer the Activate button: a form that POSTs
/// to the page's own URL), and `brand` when the link names a tenant (`name`; `logo_url`,
/// `support_email`, `support_url` when the Distributor sets them).
pub const BUILT_IN: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }}{% if brand %} · {{ brand.name }}{% endif %}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; color: #1a1a1a; }
header { display: flex; align-items: center; gap: 1rem; padding-bottom: 1rem; margin-bottom: 1.5rem; border-bottom: 1px solid #d4d4d8; }
header img { width: 160px; height: 48px; object-fit: contain; object-position: left center; }
header span { font-size: 1.1rem; font-weight: 600; }
button { font-size: 1.1rem; padding: 0.6rem 1.6rem; border-radius: 0.3rem; border: 2px solid #1d4ed8; background: #1d4ed8; color: #fff; cursor: pointer; }
button:focus { outline: 3px solid #f59e0b; outline-offset: 2px; }
footer { margin-top: 2rem; padding-top: 1rem; border-top: 1px solid #d4d4d8; font-size: 0.9rem; color: #52525b; }
</style>
</head>
<body>
{% if brand %}<header>
{% if brand.logo_url %}<img src="{{ brand.logo_url }}" alt="{{ brand.name }}" width="160" height="48">
{% endif %}<span id="brand">{{ brand.name }}</span>
</header>
{% endif %}<main>
<h1 id="outcome" data-outcome="{{ outcome }}">{{ title }}</h1>
{% for paragraph in paragraphs %}<p>{{ paragraph }}</p>
{% endfor %}{% if form %}<form method="post">
<button type="submit" id="activate">Activate</button>
</form>
{% endif %}</main>
{% if brand and (brand.support_email or brand.support_url) %}<footer id="support">
Questions? Contact {{ brand.name }}{% if brand.support_email %} at <a href="mailto:{{ brand.support_email }}">{{ brand.support_email }}</a>{% endif %}{% if brand.support_url %}{% if brand.support_email %} or{% endif %} on <a href="{{ brand.support_url }}" rel="noopener noreferrer">its support page</a>{% endif %}.
</footer>
{% endif %}</body>
</html>
"#;

/// A page: a machine-readable outcome (`data-outcome`), a title and its paragraphs (plain text,
/// escaped), whether it offers the Activate button, and the distributor it speaks for.
pub struct Page {
    pub outcome: &'static str,
    pub title: String,
    pub paragraphs: Vec<String>,
    pub form: bool,
    pub brand: Option<Brand>,
}

/// The distributor as the page presents it (from its `spec.branding`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Brand {
    pub name: String,
    pub logo_url: Option<String>,
    pub support_email: Option<String>,
    pub support_url: Option<String>,
}

/// The page template, parsed and checked.
#[derive(Clone)]
pub struct PageTemplate {
    env: Arc<Environment<'static>>,
}

impl Default for PageTemplate {
    fn default() -> Self {
        Self::parse(
            BUILT_IN.to_string(),
            Path::new("<built-in>/activation-page.html"),
        )
        .expect("the built-in page renders")
    }
}

impl PageTemplate {
    /// The built-in page, or [`FILE`] in `dir` when there is one; refused (naming the file)
    /// when it does not parse or fails to render any shape of page.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let Some(path) = dir.map(|d| d.join(FILE)).filter(|p| p.is_file()) else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(text, &path)
    }

    fn parse(text: String, path: &Path) -> Result<Self, TemplateError> {
        let invalid = |err: minijinja::Error| TemplateError::Invalid {
            path: path.to_owned(),
            message: format!("{err:#}"),
        };
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // The page ends its last line, as a file does: `curl` of it leaves the prompt, or the
        // next command's output, on a line of its own.
        env.set_keep_trailing_newline(true);
        env.add_template_owned(FILE, text).map_err(invalid)?;
        let template = Self { env: Arc::new(env) };
        for page in samples() {
            template.try_render(&page).map_err(invalid)?;
        }
        Ok(template)
    }

    pub fn render(&self, page: &Page) -> String {
        self.try_render(page)
            .expect("a page template renders every shape of page (checked at load)")
    }

    fn try_render(&self, page: &Page) -> Result<String, minijinja::Error> {
        self.env.get_template(FILE)?.render(context! {
            outcome => page.outcome,
            title => &page.title,
            paragraphs => &page.paragraphs,
            form => page.form,
            brand => &page.brand,
        })
    }
}

/// Every shape of page: with the button or without, with a full brand, a bare one, none.
fn samples() -> Vec<Page> {
    let full = Brand {
        name: "Northwind".into(),
        logo_url: Some("https://northwind.example/logo.png".into()),
        support_email: Some("help@northwind.example".into()),
        support_url: Some("https://northwind.example/help".into()),
    };
    let bare = Brand {
        name: "Northwind".into(),
        ..Brand::default()
    };
    [Some(full), Some(bare), None]
        .into_iter()
        .flat_map(|brand| {
            [true, false].map(|form| Page {
                outcome: "valid",
                title: "Activate your tenant".into(),
                paragraphs: vec!["A paragraph.".into()],
                form,
                brand: brand.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_on_the_page_is_escaped() {
        let hostile = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)> & 'q'"#;
        let html = PageTemplate::default().render(&Page {
            outcome: "valid",
            title: format!("Activate {hostile}"),
            paragraphs: vec![format!("{hostile}'s tenant")],
            form: true,
            brand: Some(Brand {
                name: hostile.into(),
                logo_url: Some(format!("https://x.example/{hostile}")),
                support_email: Some(hostile.into()),
                support_url: None,
            }),
        });
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(html.contains("&amp; &#x27;q&#x27;"), "{html}");
        assert!(html.contains(r#"<button type="submit" id="activate">Activate</button>"#));
        assert!(html.contains(r#"<html lang="en">"#));
        let without = PageTemplate::default().render(&Page {
            outcome: "unknown",
            title: "This link is not valid".into(),
            paragraphs: vec![],
            form: false,
            brand: None,
        });
        assert!(!without.contains("<form"));
        assert!(!without.contains("<header"));
        assert!(!without.contains("<footer"));
    }

    #[test]
    fn the_page_shows_the_distributors_logo_at_a_fixed_size_and_its_support_contact() {
        let html = PageTemplate::default().render(&samples().remove(0));
        assert!(
            html.contains(r#"<img src="https:&#x2f;&#x2f;northwind.example&#x2f;logo.png" alt="Northwind" width="160" height="48">"#),
            "{html}"
        );
        assert!(html.contains("mailto:help@northwind.example"), "{html}");
        assert!(html.contains("its support page"), "{html}");
    }

    #[test]
    fn an_override_is_read_from_the_templates_directory_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            PageTemplate::load(Some(dir.path())).is_ok(),
            "none: built in"
        );
        std::fs::write(
            dir.path().join(FILE),
            "<h1>{{ title }}</h1>{% if brand %}{{ brand.name }}{% endif %}",
        )
        .unwrap();
        let page = PageTemplate::load(Some(dir.path())).unwrap();
        assert_eq!(
            page.render(&samples().remove(0)),
            "<h1>Activate your tenant</h1>Northwind"
        );
        // A variable that does not exist stops the operator at startup, naming the file.
        std::fs::write(dir.path().join(FILE), "{{ brand.nmae }}").unwrap();
        let err = PageTemplate::load(Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("activation-page.html"), "{err}");
    }
}
