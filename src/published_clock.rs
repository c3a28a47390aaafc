//! A sped-up clock, published in a kubeconfig: `partner-operator sandbox --speed 86400` runs the
//! operator a day a second, and `kubectl partner` (its reports, its deadlines, the console) must
//! read the same time, or it says nothing was billed and billing starts "in 17 days".
//!
//! The sandbox writes the clock into its kubeconfig, as an extension of its cluster entry
//! ([`EXTENSION`]): a reading taken at one wall-clock instant and the speed. The plugin reads
//! the kubeconfig anyway, so it finds the clock with no variable to set, and only for that
//! cluster: another context of the same file (a real cluster) keeps the wall clock. kubectl
//! keeps extensions it does not know as they are.

use chrono::{DateTime, Duration, Utc};
use kube::config::{Kubeconfig, NamedExtension};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;

/// The name of the cluster extension that holds the clock.
pub const EXTENSION: &str = "partner-operator.io/clock";

/// One reading of a clock that runs `speed` times faster than the wall clock: at wall-clock
/// `wall`, it read `reads`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedClock {
    pub wall: DateTime<Utc>,
    pub reads: DateTime<Utc>,
    pub speed: f64,
}

impl PublishedClock {
    /// A reading of `clock` now.
    pub fn of(clock: &Clock) -> Self {
        Self {
            wall: Utc::now(),
            reads: clock.now(),
            speed: clock.speed(),
        }
    }

    /// What the clock reads at wall-clock `wall`.
    pub fn at(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        let elapsed = (wall - self.wall).num_microseconds().unwrap_or(i64::MAX) as f64;
        let scaled = (elapsed * self.speed).clamp(i64::MIN as f64, i64::MAX as f64);
        self.reads + Duration::microseconds(scaled as i64)
    }

    /// What the clock reads now.
    pub fn now(&self) -> DateTime<Utc> {
        self.at(Utc::now())
    }

    /// `kubeconfig` (YAML) with this clock as an extension of every cluster it names.
    pub fn publish_in(&self, kubeconfig: &str) -> Result<String, String> {
        let mut config: Kubeconfig = serde_yaml::from_str(kubeconfig).map_err(|e| e.to_string())?;
        let extension = NamedExtension {
            name: EXTENSION.into(),
            extension: serde_json::to_value(self).expect("a clock serializes"),
        };
        for named in &mut config.clusters {
            if let Some(cluster) = &mut named.cluster {
                let extensions = cluster.extensions.get_or_insert_with(Vec::new);
                extensions.retain(|e| e.name != EXTENSION);
                extensions.push(extension.clone());
            }
        }
        serde_yaml::to_string(&config).map_err(|e| e.to_string())
    }

    /// The clock `config` publishes for the cluster of `context` (the current context when
    /// `None`); `None` when it publishes none (the wall clock), or one that cannot be read
    /// (it does not run: a speed that is not a positive number).
    pub fn from_kubeconfig(config: &Kubeconfig, context: Option<&str>) -> Option<Self> {
        let context = context.or(config.current_context.as_deref())?;
        let cluster = config
            .contexts
            .iter()
            .find(|c| c.name == context)?
            .context
            .as_ref()?
            .cluster
            .clone();
        let extensions = config
            .clusters
            .iter()
            .find(|c| c.name == cluster)?
            .cluster
            .as_ref()?
            .extensions
            .as_ref()?;
        let published = extensions.iter().find(|e| e.name == EXTENSION)?;
        let clock: Self = serde_json::from_value(published.extension.clone()).ok()?;
        (clock.speed > 0.0 && clock.speed.is_finite()).then_some(clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster: {server: 'https://127.0.0.1:6443'}
- name: other
  cluster: {server: 'https://10.0.0.1:6443'}
contexts:
- name: sandbox
  context: {cluster: sandbox, user: admin}
- name: other
  context: {cluster: other, user: admin}
current-context: sandbox
users:
- name: admin
  user: {token: t}
";

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_day_a_second_read_back_from_the_kubeconfig() {
        let clock = PublishedClock {
            wall: at("2026-12-07T02:00:00Z"),
            reads: at("2026-12-07T02:00:00Z"),
            speed: 86400.0,
        };
        assert_eq!(
            clock.at(at("2026-12-07T02:00:14Z")),
            at("2026-12-21T02:00:00Z")
        );
        let published = clock.publish_in(KUBECONFIG).unwrap();
        let config: Kubeconfig = serde_yaml::from_str(&published).unwrap();
        assert_eq!(PublishedClock::from_kubeconfig(&config, None), Some(clock));
        assert_eq!(
            PublishedClock::from_kubeconfig(&config, Some("sandbox")),
            Some(clock)
        );
        // Published again (a restarted sandbox), the clock is replaced, not added.
        let again = clock.publish_in(&published).unwrap();
        let config: Kubeconfig = serde_yaml::from_str(&again).unwrap();
        let extensions = config.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .extensions
            .clone();
        assert_eq!(extensions.unwrap().len(), 1);
    }

    #[test]
    fn a_kubeconfig_without_a_clock_or_with_a_bad_one_is_the_wall_clock() {
        let config: Kubeconfig = serde_yaml::from_str(KUBECONFIG).unwrap();
        assert_eq!(PublishedClock::from_kubeconfig(&config, None), None);
        assert_eq!(
            PublishedClock::from_kubeconfig(&config, Some("nowhere")),
            None
        );
        let stopped = PublishedClock {
            wall: at("2026-12-07T02:00:00Z"),
            reads: at("2026-12-07T02:00:00Z"),
            speed: 0.0,
        };
        let config: Kubeconfig =
            serde_yaml::from_str(&stopped.publish_in(KUBECONFIG).unwrap()).unwrap();
        assert_eq!(PublishedClock::from_kubeconfig(&config, None), None);
    }
}
