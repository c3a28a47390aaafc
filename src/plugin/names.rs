//! Every name the plugin puts into a request path is checked here, once, before any request:
//! kube builds the URL from the name as it is given, so `contoso?fieldManager=x&a=` would add
//! query parameters and `../x` would name another resource. A Partner's and a Distributor's
//! name must be a DNS subdomain, a namespace a DNS label, as Kubernetes requires; anything
//! else is refused in one line naming the argument.

use super::{Command, Error, Result};
use crate::api::grammar::{DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN};

/// What Kubernetes requires of a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// RFC 1123 subdomain: at most 253 characters, lower-case labels joined by dots.
    Subdomain,
    /// RFC 1123 label: at most 63 characters, lower-case letters, digits and '-'.
    Label,
}

/// Checks `value`, given as `argument` (`NAME`, `--namespace`), against `kind`.
pub fn check(argument: &str, what: &str, value: &str, kind: Kind) -> Result<()> {
    let (pattern, max, rule) = match kind {
        Kind::Subdomain => (
            DNS_SUBDOMAIN_PATTERN,
            253,
            "lower-case letters, digits, '-' and '.', starting and ending with a letter or \
             digit, at most 253",
        ),
        Kind::Label => (
            DNS_LABEL_PATTERN,
            63,
            "lower-case letters, digits and '-', starting and ending with a letter or digit, at \
             most 63",
        ),
    };
    let valid = value.len() <= max
        && regex::Regex::new(pattern)
            .expect("the grammar's pattern")
            .is_match(value);
    if valid {
        Ok(())
    } else {
        Err(Error(format!(
            "{argument}: {value:?} is not a valid {what} name ({rule})"
        )))
    }
}

/// A name to check: the argument it came from, what it names, its value, what it must be.
type Name<'a> = (&'static str, &'static str, &'a str, Kind);

fn partner(name: &str) -> Name<'_> {
    ("NAME", "Partner", name, Kind::Subdomain)
}

fn distributor<'a>(argument: &'static str, name: &'a str) -> Name<'a> {
    (argument, "Distributor", name, Kind::Subdomain)
}

impl Command {
    /// The names the command puts into request paths. The match has no catch-all: a new
    /// command says here what it names.
    fn names(&self) -> Vec<Name<'_>> {
        match self {
            Self::Add(args) => std::iter::once(partner(&args.name))
                .chain(
                    args.distributor
                        .as_deref()
                        .map(|d| distributor("--distributor", d)),
                )
                .collect(),
            Self::List(_) => vec![],
            Self::Status(args) => vec![partner(&args.name)],
            Self::Convert(args) => vec![partner(&args.name)],
            Self::AutoUpgrade(args) => vec![partner(&args.name)],
            Self::Renew(args) => vec![partner(&args.name)],
            Self::ResendActivation(args) => vec![partner(&args.name)],
            Self::Billing(args) => vec![distributor("DISTRIBUTOR", &args.distributor)],
            // The console checks each name a page sends before it goes into a path.
            Self::Console(_) => vec![],
        }
    }

    /// Checks every name the command would put into a request path.
    pub fn check_names(&self) -> Result<()> {
        for (argument, what, value, kind) in self.names() {
            check(argument, what, value, kind)?;
        }
        Ok(())
    }
}

/// Checks the namespace the Partners are in (from `-n`, or the kubeconfig's context).
pub fn check_namespace(namespace: &str) -> Result<()> {
    check("--namespace", "namespace", namespace, Kind::Label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Cli;
    use clap::Parser;

    fn checked(args: &[&str]) -> Result<()> {
        let mut all = vec!["kubectl-partner"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().command.check_names()
    }

    #[test]
    fn every_command_refuses_a_name_that_is_no_dns_subdomain() {
        for bad in ["contoso?fieldManager=x&a=", "../x", "Contoso", "a/b", ""] {
            for args in [
                vec!["status", bad],
                vec!["convert", bad],
                vec!["auto-upgrade", bad, "on"],
                vec!["renew", bad, "--expires", "+90d"],
                vec!["resend-activation", bad],
                vec!["add", bad, "--org", "O", "--email", "a@b.example"],
                vec!["billing", bad],
            ] {
                let err = checked(&args).expect_err(&format!("{args:?}"));
                assert!(err.0.contains(&format!("{bad:?} is not a valid")), "{err}");
            }
        }
        let err = checked(&[
            "add",
            "ok",
            "--org",
            "O",
            "--email",
            "a@b.example",
            "--distributor",
            "x?y",
        ])
        .unwrap_err();
        assert!(err.0.starts_with("--distributor: \"x?y\""), "{err}");
        assert!(checked(&["status", "contoso.eu-1"]).is_ok());
        assert!(checked(&["list"]).is_ok());
    }

    #[test]
    fn a_namespace_is_a_dns_label() {
        assert!(check_namespace("northwind-partners").is_ok());
        for bad in ["a.b", "../x", "x?y=1", &"a".repeat(64)] {
            assert!(check_namespace(bad).is_err(), "{bad}");
        }
    }
}
