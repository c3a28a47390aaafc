//! Loading the templates: the built-in ones, each replaced by a file of the same name in
//! `--templates-dir` if there is one, and every one checked in every branch at startup.

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use super::render::{describe, html_formatter};
use super::{EVENTS, EmailVars, PARTS, TemplateError, Templates, built_in};
use crate::api::EmailEvent;

impl Templates {
    /// The built-in templates, each replaced by the file of the same name in `dir` if there
    /// is one. A file in `dir` that is not a template name is refused, so a misspelt
    /// override (`activaton.html`) is not silently ignored.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut sources = built_in_sources();
        if let Some(dir) = dir {
            override_from(dir, &mut sources)?;
        }
        let env = environment(&sources)?;
        check_every_branch(&env, &sources)?;
        Ok(Self { env })
    }
}

/// One template's source, and the directory it was read from (`None`: built in).
struct Source<'a> {
    name: String,
    dir: Option<&'a Path>,
    text: String,
}

/// Where a template came from, to name it in errors.
fn origin(dir: Option<&Path>, name: &str) -> PathBuf {
    match dir {
        Some(dir) => dir.join(name),
        None => PathBuf::from(format!("<built-in>/{name}")),
    }
}

/// The built-in source of every template (`<event>.<part>`), event by event.
fn built_in_sources() -> Vec<Source<'static>> {
    EVENTS
        .iter()
        .flat_map(|event| {
            PARTS
                .iter()
                .map(move |part| format!("{}.{part}", event.as_str()))
        })
        .map(|name| Source {
            text: built_in::source(&name).to_owned(),
            name,
            dir: None,
        })
        .collect()
}

/// Replaces each source by the file of the same name in `dir`, and refuses a file there that
/// is not a template name.
fn override_from<'a>(dir: &'a Path, sources: &mut [Source<'a>]) -> Result<(), TemplateError> {
    let entries = std::fs::read_dir(dir).map_err(|source| TemplateError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| TemplateError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let file = entry.file_name().to_string_lossy().into_owned();
        // Kubernetes mounts a ConfigMap with hidden `..data` links and directories; the
        // activation page's template is read by the activation service.
        if file.starts_with('.') || entry.path().is_dir() || file == crate::activation::page::FILE {
            continue;
        }
        let Some(slot) = sources.iter_mut().find(|source| source.name == file) else {
            return Err(TemplateError::UnknownFile {
                path: dir.to_owned(),
                file,
                events: EVENTS.map(EmailEvent::as_str).join(", "),
            });
        };
        let path = entry.path();
        slot.text = std::fs::read_to_string(&path)
            .map_err(|source| TemplateError::Read { path, source })?;
        slot.dir = Some(dir);
    }
    Ok(())
}

/// The environment holding every template, each parsed: strict about undefined variables,
/// escaping every value in an HTML body.
fn environment(sources: &[Source]) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Keep a template's final newline out of subjects; bodies keep their own layout.
    env.set_keep_trailing_newline(false);
    // Said here rather than left to minijinja's default (which also escapes `.html`):
    // every value in an HTML body is escaped, partner-supplied names included; the
    // subject and the text body are plain text and keep them as written.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(html_formatter);
    for source in sources {
        env.add_template_owned(source.name.clone(), source.text.clone())
            .map_err(|err| TemplateError::Invalid {
                path: origin(source.dir, &source.name),
                message: describe(&err),
            })?;
    }
    Ok(env)
}

/// Renders every template with each shape of variables its event can be given, so a typo in
/// any branch stops the operator at startup, with the file's name.
fn check_every_branch(env: &Environment, sources: &[Source]) -> Result<(), TemplateError> {
    let samples = EmailVars::samples();
    for event in EVENTS {
        for sample in samples.iter().filter(|s| s.missing(event).is_empty()) {
            let context = sample.context();
            for part in PARTS {
                let name = format!("{}.{part}", event.as_str());
                let rendered = env.get_template(&name).and_then(|t| t.render(&context));
                if let Err(err) = rendered {
                    let from = sources
                        .iter()
                        .find(|source| source.name == name)
                        .and_then(|source| source.dir);
                    return Err(TemplateError::Invalid {
                        path: origin(from, &name),
                        message: describe(&err),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::mail::templates::Templates;

    #[test]
    fn an_override_is_checked_in_every_branch() {
        // A typo in the Production branch of an activation override is caught at startup,
        // although the trial branch renders.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("activation.txt"),
            "{% if production_since %}{{ expires_onn }}{% else %}{{ trial_ends_on }}{% endif %}\n",
        )
        .unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("activation.txt"), "{err}");
        assert!(err.contains("undefined"), "{err}");
    }
}
