//! The console's HTML: minijinja templates with HTML auto-escaping, so every value a Partner's
//! author wrote (an organization name, a condition's message) is shown as text, never markup.
//! The script and style are files of their own, served by the console (its
//! Content-Security-Policy allows nothing inline).

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

/// The templates, parsed once.
pub struct Templates {
    env: Environment<'static>,
}

pub const SCRIPT: &str = include_str!("assets/console.js");
pub const STYLE: &str = include_str!("assets/console.css");

const FILES: [(&str, &str); 5] = [
    ("base.html", include_str!("templates/base.html")),
    ("row.html", include_str!("templates/row.html")),
    ("partners.html", include_str!("templates/partners.html")),
    ("partner.html", include_str!("templates/partner.html")),
    ("billing.html", include_str!("templates/billing.html")),
];

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, source) in FILES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("the template {name} parses: {e}"));
        }
        Self { env }
    }

    /// Renders the template `name` with `context`.
    pub fn render(&self, name: &str, context: impl Serialize) -> String {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .unwrap_or_else(|e| panic!("the template {name} renders: {e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes() {
        let templates = Templates::new();
        let html = templates.render(
            "row.html",
            minijinja::context! { r => minijinja::context! {
                id => "row--a--b", namespace => "a", name => "b",
                organization => "<script>alert(1)</script>", distributor => "d",
                level => "Trial", activation => "sent", daysLeft => "14d",
                autoUpgrade => "on", can_convert => true,
            }, all => false },
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
