//! The built-in templates' text, which ships inside the binary (the files beside this one), and
//! the tests of its wording.

/// The built-in source of the template `name` (`<event>.<part>`).
pub fn source(name: &str) -> &'static str {
    macro_rules! templates {
        ($($file:literal),* $(,)?) => {
            match name {
                $($file => include_str!($file),)*
                _ => "",
            }
        };
    }
    templates!(
        "activation.subject.txt",
        "activation.txt",
        "activation.html",
        "upgrade-notice.subject.txt",
        "upgrade-notice.txt",
        "upgrade-notice.html",
        "expiry-notice.subject.txt",
        "expiry-notice.txt",
        "expiry-notice.html",
        "converted.subject.txt",
        "converted.txt",
        "converted.html",
        "trial-expired.subject.txt",
        "trial-expired.txt",
        "trial-expired.html",
        "production-expired.subject.txt",
        "production-expired.txt",
        "production-expired.html",
        "renewed.subject.txt",
        "renewed.txt",
        "renewed.html",
        "activated.subject.txt",
        "activated.txt",
        "activated.html",
    )
}

#[cfg(test)]
mod tests {
    use crate::api::{DeletionPolicy, EmailEvent};
    use crate::mail::templates::test_vars::{at, bodies, production, trial, vars};
    use crate::mail::templates::{EVENTS, EmailVars, Templates};

    #[test]
    fn every_built_in_template_renders() {
        let templates = Templates::built_in();
        for event in EVENTS {
            let email = templates.render(event, &vars()).unwrap();
            assert!(!email.subject.is_empty(), "{event:?}");
            assert!(email.text.contains("Acme <IT> & Co"), "{event:?}");
            assert!(email.html.contains("Acme &lt;IT&gt; &amp; Co"), "{event:?}");
            assert!(!email.html.contains("<IT>"), "{event:?}");
            assert!(!email.html.contains("&#x2f;"), "{event:?}");
        }
    }

    #[test]
    fn partner_text_is_plain_in_the_text_part_and_escaped_in_the_html_part() {
        let templates = Templates::built_in();
        let vars = EmailVars {
            partner_organization: "<b>Contoso</b> \"IT\"".into(),
            production_since: Some(at("2026-11-02T09:30:00Z")),
            ..trial()
        };
        for event in EVENTS {
            let email = templates.render(event, &vars).unwrap();
            if event == EmailEvent::Activated {
                // To the distributor, naming the partner.
                assert!(email.text.contains(
                    "Your partner \"<b>Contoso</b> \"IT\"\" (the organization name given"
                ));
                assert!(email.text.contains("activated its tenant"));
                assert!(
                    email
                        .html
                        .contains("&lt;b&gt;Contoso&lt;/b&gt; &quot;IT&quot;")
                );
                assert!(!email.html.contains("<b>"));
                continue;
            }
            assert!(
                email.text.starts_with(
                    "Hello,\n\nThis message is about the tenant of \"<b>Contoso</b> \"IT\"\" (the organization name given"
                ),
                "{event:?}: {}",
                email.text
            );
            assert!(
                email
                    .html
                    .contains("the tenant of “&lt;b&gt;Contoso&lt;/b&gt; &quot;IT&quot;”"),
                "{event:?}: {}",
                email.html
            );
            assert!(!email.html.contains("<b>"), "{event:?}");
            assert!(email.subject.contains("<b>Contoso</b>"), "{event:?}");
        }
    }

    #[test]
    fn subjects_do_not_start_with_partner_text() {
        let templates = Templates::built_in();
        let vars = EmailVars {
            production_since: Some(at("2026-11-02T09:30:00Z")),
            ..trial()
        };
        let copy = EmailVars {
            to_distributor: true,
            ..vars.clone()
        };
        for event in EVENTS {
            // The operator's own words lead; the partner's name comes last, quoted and
            // attributed.
            let subject = templates.render(event, &vars).unwrap().subject;
            assert!(
                ["Activate ", "Trial ", "Tenant ", "Production "]
                    .iter()
                    .any(|lead| subject.starts_with(lead)),
                "{subject}"
            );
            assert!(subject.ends_with(" (partner \"Contoso\")"), "{subject}");
            if event == EmailEvent::Activated {
                // The distributor's own news, never a copy of a partner's message.
                continue;
            }
            // The distributor's copy says that it is one.
            let copy = templates.render(event, &copy).unwrap().subject;
            assert_eq!(copy, format!("Copy of a partner notice: {subject}"));
        }
        let converted = templates.render(EmailEvent::Converted, &production(None));
        assert_eq!(
            converted.unwrap().subject,
            "Tenant now in Production (partner \"Contoso\")"
        );
    }

    #[test]
    fn every_email_names_the_partner_as_registered_and_offers_a_reply_to_the_distributor() {
        let templates = Templates::built_in();
        for (event, vars) in [
            (EmailEvent::Activation, trial()),
            (EmailEvent::Activation, production(None)),
            (EmailEvent::UpgradeNotice, trial()),
            (EmailEvent::ExpiryNotice, trial()),
            (EmailEvent::Converted, production(None)),
            (EmailEvent::TrialExpired, trial()),
            (
                EmailEvent::ProductionExpired,
                production(Some(at("2027-06-30T00:00:00Z"))),
            ),
        ] {
            let email = templates.render(event, &vars).unwrap();
            for body in bodies(&email) {
                assert!(
                    body.starts_with(
                        "Hello, This message is about the tenant of \u{201c}Contoso\u{201d}"
                    ) || body.starts_with("Hello, This message is about the tenant of \"Contoso\""),
                    "{event:?}: {body}"
                );
                assert!(
                    body.contains(
                        "Questions? Reply to this email to reach Northwind at ops@northwind.example."
                    ),
                    "{event:?}: {body}"
                );
                assert!(!body.contains("Hello Contoso"), "{event:?}: {body}");
                // No date without its time.
                assert!(!body.contains("2026-"), "{event:?}: {body}");
            }
            // Without an address to reply to, no sentence offers one.
            let no_reply = EmailVars {
                reply_to: None,
                ..vars
            };
            let email = templates.render(event, &no_reply).unwrap();
            for body in bodies(&email) {
                assert!(!body.contains("Reply to"), "{event:?}: {body}");
            }
        }
    }

    #[test]
    fn every_date_is_an_instant() {
        let templates = Templates::built_in();
        let trial_end = "on 12 December 2026 at 20:48 UTC";
        let expect = [
            (EmailEvent::Activation, trial(), trial_end),
            (
                EmailEvent::Activation,
                trial(),
                "valid until 2 December 2026 at 10:00 UTC",
            ),
            (EmailEvent::UpgradeNotice, trial(), trial_end),
            (EmailEvent::ExpiryNotice, trial(), trial_end),
            (EmailEvent::TrialExpired, trial(), trial_end),
            (
                EmailEvent::Converted,
                production(None),
                "moved to Production on 2 November 2026 at 09:30 UTC",
            ),
            (
                EmailEvent::Converted,
                production(Some(at("2027-06-30T00:00:00Z"))),
                "runs until 30 June 2027 at 00:00 UTC",
            ),
            (
                EmailEvent::ProductionExpired,
                production(Some(at("2027-06-30T00:00:00Z"))),
                "expired on 30 June 2027 at 00:00 UTC",
            ),
        ];
        for (event, vars, said) in expect {
            let email = templates.render(event, &vars).unwrap();
            for body in bodies(&email) {
                assert!(body.contains(said), "{event:?} lacks {said:?}: {body}");
            }
        }
        let upgrade = templates
            .render(EmailEvent::UpgradeNotice, &trial())
            .unwrap();
        assert_eq!(
            upgrade.subject,
            "Trial converts to Production on 12 December 2026 at 20:48 UTC (partner \"Contoso\")"
        );
        let expiry = templates
            .render(EmailEvent::ExpiryNotice, &trial())
            .unwrap();
        assert_eq!(
            expiry.subject,
            "Trial expires on 12 December 2026 at 20:48 UTC (partner \"Contoso\")"
        );
    }

    #[test]
    fn expiry_emails_say_what_becomes_of_the_tenant_and_its_data() {
        let templates = Templates::built_in();
        let kept = "The tenant and its data are kept, with its entitlements marked as expired, \
                    until your partner record at Northwind is deleted.";
        let deleted = "Deleting that record also deletes the tenant (namespace partners-example) \
                       and all of its data.";
        let retained = "Deleting that record does not delete the tenant (namespace \
                        partners-example) or its data: they are kept.";
        let ended = production(Some(at("2027-06-30T00:00:00Z")));
        for (event, vars) in [
            (EmailEvent::ExpiryNotice, trial()),
            (EmailEvent::TrialExpired, trial()),
            (EmailEvent::ProductionExpired, ended),
        ] {
            for (policy, says, not) in [
                (DeletionPolicy::Delete, deleted, retained),
                (DeletionPolicy::Retain, retained, deleted),
            ] {
                let vars = EmailVars {
                    deletion_policy: policy,
                    ..vars.clone()
                };
                let email = templates.render(event, &vars).unwrap();
                for body in bodies(&email) {
                    let lower = body.to_lowercase();
                    assert!(lower.contains(&kept.to_lowercase()), "{event:?}: {body}");
                    assert!(body.contains(says), "{event:?} {policy:?}: {body}");
                    assert!(!body.contains(not), "{event:?} {policy:?}: {body}");
                }
            }
        }
        // The others do not talk about deleting anything.
        for (event, vars) in [
            (EmailEvent::Activation, trial()),
            (EmailEvent::UpgradeNotice, trial()),
            (EmailEvent::Converted, production(None)),
        ] {
            let email = templates.render(event, &vars).unwrap();
            for body in bodies(&email) {
                assert!(!body.contains("delete"), "{event:?}: {body}");
            }
        }
    }

    #[test]
    fn an_activation_in_production_says_production_and_never_trial() {
        let templates = Templates::built_in();
        for (expires_at, until) in [
            (
                Some(at("2027-06-30T00:00:00Z")),
                "runs until 30 June 2027 at 00:00 UTC.",
            ),
            (None, "has no end date."),
        ] {
            let email = templates
                .render(EmailEvent::Activation, &production(expires_at))
                .unwrap();
            assert_eq!(email.subject, "Activate your tenant (partner \"Contoso\")");
            for body in bodies(&email) {
                assert!(
                    body.contains(&format!(
                        "Northwind has set up a Production tenant for you. Your Production \
                         subscription started on 2 November 2026 at 09:30 UTC and {until}"
                    )),
                    "{body}"
                );
                assert!(!body.to_lowercase().contains("trial"), "{body}");
                assert!(body.contains("valid until 2 December 2026 at 10:00 UTC"));
            }
            assert!(!email.subject.to_lowercase().contains("trial"));
        }
        // A trial's activation says so.
        let email = templates.render(EmailEvent::Activation, &trial()).unwrap();
        for body in bodies(&email) {
            assert!(
                body.contains(
                    "Northwind has set up a trial tenant for you. Your trial ends on 12 December \
                     2026 at 20:48 UTC."
                ),
                "{body}"
            );
            assert!(!body.contains("Production"), "{body}");
        }
    }

    #[test]
    fn the_converted_email_reads_well() {
        let templates = Templates::built_in();
        let email = templates
            .render(EmailEvent::Converted, &production(None))
            .unwrap();
        for body in bodies(&email) {
            assert!(
                body.contains(
                    "Your tenant moved to Production on 2 November 2026 at 09:30 UTC. Billing to \
                     Northwind started then. Your Production subscription has no end date."
                ),
                "{body}"
            );
            assert!(!body.contains("is in Production since"), "{body}");
        }
    }

    #[test]
    fn wording_names_the_dates_and_the_distributor() {
        let templates = Templates::built_in();
        let at = "2026-03-14T10:00:00Z".parse().unwrap();
        let vars = EmailVars {
            trial_ends_at: Some(at),
            ..vars()
        };
        let upgrade = templates.render(EmailEvent::UpgradeNotice, &vars).unwrap();
        assert!(
            upgrade
                .subject
                .contains("converts to Production on 14 March 2026 at 10:00 UTC")
        );
        assert!(
            upgrade
                .text
                .contains("Billing to Example Distribution starts then")
        );
        let expiry = templates.render(EmailEvent::ExpiryNotice, &vars).unwrap();
        assert!(
            expiry
                .subject
                .contains("expires on 14 March 2026 at 10:00 UTC")
        );
        let activation = templates.render(EmailEvent::Activation, &vars).unwrap();
        assert_eq!(
            activation.subject,
            "Activate your tenant (partner \"Acme <IT> & Co\")"
        );
        assert!(activation.text.contains("https://example.invalid/activate"));
    }
}
