//! Variables the tests render the templates with, and what they look for in the bodies.

use chrono::{DateTime, Utc};

use super::{EmailVars, RenderedEmail};

pub fn vars() -> EmailVars {
    EmailVars {
        partner_organization: "Acme <IT> & Co".into(),
        ..EmailVars::sample()
    }
}

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A trial partner: no Production yet.
pub fn trial() -> EmailVars {
    EmailVars {
        partner_organization: "Contoso".into(),
        distributor_organization: "Northwind".into(),
        link_expires_at: Some(at("2026-12-02T10:00:00Z")),
        trial_ends_at: Some(at("2026-12-12T20:48:37Z")),
        production_since: None,
        expires_at: Some(at("2026-12-12T20:48:37Z")),
        reply_to: Some("ops@northwind.example".into()),
        ..EmailVars::sample()
    }
}

/// A partner that started in Production: no trial at all.
pub fn production(expires_at: Option<DateTime<Utc>>) -> EmailVars {
    EmailVars {
        trial_ends_at: None,
        production_since: Some(at("2026-11-02T09:30:00Z")),
        expires_at,
        ..trial()
    }
}

/// The HTML body with its tags taken out and its lines joined, to look for sentences.
pub fn html_text(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Both bodies of `email`, the HTML one as text.
pub fn bodies(email: &RenderedEmail) -> [String; 2] {
    [
        email.text.split_whitespace().collect::<Vec<_>>().join(" "),
        html_text(&email.html),
    ]
}
