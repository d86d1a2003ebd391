//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's
//! semantics: a candidate acquires the lease when it is free or its holder has
//! not renewed it for `--leader-elect-lease-duration` (measured on the local
//! clock from when this candidate last saw the record change), the leader
//! renews it every `--leader-elect-retry-period` and gives up leadership when
//! it could not renew for `--leader-elect-renew-deadline`. Losing the lease
//! ends [`run`] with an error ("leaderelection lost"), so the daemon exits
//! like upstream's components do and its supervisor restarts it.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio_util::sync::CancellationToken;

use crate::events::{EventType, Recorder};

struct Status {
    leading: bool,
    last_renew: Option<Instant>,
    lease_duration: Duration,
}

static STATUS: std::sync::Mutex<Status> = std::sync::Mutex::new(Status {
    leading: false,
    last_renew: None,
    lease_duration: Duration::from_secs(15),
});

static MASTER_STATUS: std::sync::OnceLock<prometheus::IntGaugeVec> = std::sync::OnceLock::new();

fn master_status() -> &'static prometheus::IntGaugeVec {
    MASTER_STATUS.get_or_init(|| {
        prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "leader_election_master_status",
                "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
            ),
            &["name"],
        )
        .expect("valid metric")
    })
}

/// Registers `leader_election_master_status{name}` in `registry`.
pub fn register_metrics(registry: &prometheus::Registry) -> prometheus::Result<()> {
    registry.register(Box::new(master_status().clone()))
}

fn set_status(f: impl FnOnce(&mut Status)) {
    f(&mut STATUS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The `leaderElection` health check (upstream's HealthzAdaptor): fails when
/// this process leads but has not renewed its lease for the lease duration
/// plus `tolerance`.
pub fn health_check(tolerance: Duration) -> component_base::serve::Check {
    std::sync::Arc::new(move || {
        let s = STATUS.lock().unwrap_or_else(|e| e.into_inner());
        if !s.leading {
            return true;
        }
        s.last_renew
            .map(|t| t.elapsed() <= s.lease_duration + tolerance)
            .unwrap_or(true)
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    component_base::duration::parse(s).map_err(|e| e.to_string())
}

/// The upstream `--leader-elect*` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct LeaderElectionArgs {
    /// Start a leader election client and gain leadership before executing the
    /// main loop. Enable this when running replicated components for high availability.
    #[arg(long = "leader-elect", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub leader_elect: bool,
    /// The duration that non-leader candidates will wait after observing a
    /// leadership renewal until attempting to acquire leadership of a led but
    /// unrenewed leader slot.
    #[arg(long = "leader-elect-lease-duration", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The interval between attempts by the acting master to renew a
    /// leadership slot before it stops leading. Must be less than the lease duration.
    #[arg(long = "leader-elect-renew-deadline", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// The duration the clients should wait between attempting acquisition and
    /// renewal of a leadership.
    #[arg(long = "leader-elect-retry-period", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
    /// The type of resource object that is used for locking during leader
    /// election. Supported options are 'leases'.
    #[arg(long = "leader-elect-resource-lock", default_value = "leases")]
    pub resource_lock: String,
    /// The name of resource object that is used for locking during leader
    /// election (default: the component name).
    #[arg(long = "leader-elect-resource-name")]
    pub resource_name: Option<String>,
    /// The namespace of resource object that is used for locking during leader election.
    #[arg(
        long = "leader-elect-resource-namespace",
        default_value = "kube-system"
    )]
    pub resource_namespace: String,
}

impl Default for LeaderElectionArgs {
    fn default() -> Self {
        LeaderElectionArgs {
            leader_elect: true,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            resource_lock: "leases".into(),
            resource_name: None,
            resource_namespace: "kube-system".into(),
        }
    }
}

impl LeaderElectionArgs {
    /// Checks the flag combinations upstream rejects.
    pub fn validate(&self) -> Result<()> {
        if !self.leader_elect {
            return Ok(());
        }
        if self.resource_lock != "leases" {
            bail!(
                "--leader-elect-resource-lock={:?} is not supported (only \"leases\")",
                self.resource_lock
            );
        }
        if self.lease_duration <= self.renew_deadline {
            bail!("leaseDuration must be greater than renewDeadline");
        }
        if self.retry_period.is_zero() || self.renew_deadline.is_zero() {
            bail!("retryPeriod and renewDeadline must be greater than zero");
        }
        // client-go: renewDeadline must exceed JitterFactor(1.2) * retryPeriod.
        if self.renew_deadline.as_secs_f64() <= 1.2 * self.retry_period.as_secs_f64() {
            bail!("renewDeadline must be greater than retryPeriod*JitterFactor");
        }
        Ok(())
    }
}

/// One candidate for a lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    recorder: Recorder,
    observed: Option<(Option<String>, Option<MicroTime>)>,
    observed_at: Instant,
}

/// `<hostname>_<uuid>`, upstream's holder identity.
pub fn new_identity() -> String {
    format!("{}_{}", crate::hostname(), uuid::Uuid::new_v4())
}

impl LeaderElector {
    /// A candidate for the lease named by `args` (default `default_name`).
    pub fn new(client: kube::Client, args: &LeaderElectionArgs, default_name: &str) -> Self {
        let name = args
            .resource_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default_name.to_string());
        master_status().with_label_values(&[&name]).set(0);
        LeaderElector {
            api: Api::namespaced(client.clone(), &args.resource_namespace),
            name,
            namespace: args.resource_namespace.clone(),
            identity: new_identity(),
            lease_duration: args.lease_duration,
            renew_deadline: args.renew_deadline,
            retry_period: args.retry_period,
            recorder: Recorder::start(client, default_name.to_string(), None),
            observed: None,
            observed_at: Instant::now(),
        }
    }

    /// Overrides the holder identity.
    pub fn with_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = identity.into();
        self
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn jittered_retry(&self) -> Duration {
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0 * 0.2;
        self.retry_period.mul_f64(1.0 + jitter)
    }

    /// Blocks until this candidate holds the lease.
    pub async fn acquire(&mut self) {
        tracing::info!(
            "attempting to acquire leader lease {}/{}...",
            self.namespace,
            self.name
        );
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(
                        "successfully acquired lease {}/{}",
                        self.namespace,
                        self.name
                    );
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::info!(
                    "error retrieving resource lock {}/{}: {e}",
                    self.namespace,
                    self.name
                ),
            }
            tokio::time::sleep(self.jittered_retry()).await;
        }
    }

    /// Renews the lease every retry period; returns when leadership is lost
    /// (no successful renewal within the renew deadline) or `stop` fires.
    pub async fn renew_until_lost(&mut self, stop: &CancellationToken) -> bool {
        loop {
            let deadline = Instant::now() + self.renew_deadline;
            let mut renewed = false;
            while Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                    Ok(Ok(true)) => {
                        renewed = true;
                        break;
                    }
                    Ok(Ok(false)) => {
                        // Somebody else holds an unexpired lease: lost.
                        break;
                    }
                    Ok(Err(e)) => tracing::info!(
                        "failed to renew lease {}/{}: {e}",
                        self.namespace,
                        self.name
                    ),
                    Err(_) => {}
                }
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(self.retry_period.min(deadline.saturating_duration_since(Instant::now()))) => {}
                }
            }
            if !renewed {
                set_status(|s| s.leading = false);
                master_status().with_label_values(&[&self.name]).set(0);
                tracing::info!(
                    "failed to renew lease {}/{}: timed out waiting for the condition",
                    self.namespace,
                    self.name
                );
                self.recorder.event(
                    &self.lease_ref(),
                    EventType::Normal,
                    "LeaderElection",
                    format!("{} stopped leading", self.identity),
                );
                return true;
            }
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(self.retry_period) => {}
            }
        }
    }

    /// Gives the lease up (holder cleared) so another candidate can take over
    /// at once.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        set_status(|s| s.leading = false);
        master_status().with_label_values(&[&self.name]).set(0);
        let _ = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
    }

    fn lease_ref(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("coordination.k8s.io/v1".into()),
            kind: Some("Lease".into()),
            namespace: Some(self.namespace.clone()),
            name: Some(self.name.clone()),
            ..Default::default()
        }
    }

    /// One attempt (client-go's tryAcquireOrRenew). Ok(true): we hold the lease.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let secs = self.lease_duration.as_secs().max(1) as i32;
        let existing = self.api.get_opt(&self.name).await?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            self.api.create(&PostParams::default(), &lease).await?;
            self.renewed();
            self.observed = None;
            self.observed_at = Instant::now();
            self.became_leader();
            return Ok(true);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = (spec.holder_identity.clone(), spec.renew_time.clone());
        if self.observed.as_ref() != Some(&record) {
            self.observed = Some(record);
            self.observed_at = Instant::now();
        }
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let we_hold = holder == self.identity;
        let held_duration = spec
            .lease_duration_seconds
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(self.lease_duration);
        if !holder.is_empty() && !we_hold && self.observed_at.elapsed() < held_duration {
            tracing::debug!("lock is held by {holder} and has not yet expired");
            return Ok(false);
        }
        let mut new = spec.clone();
        new.holder_identity = Some(self.identity.clone());
        new.lease_duration_seconds = Some(secs);
        new.renew_time = Some(now.clone());
        if !we_hold {
            new.acquire_time = Some(now);
            new.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        lease.spec = Some(new);
        let updated = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        self.renewed();
        let s = updated.spec.unwrap_or_default();
        self.observed = Some((s.holder_identity, s.renew_time));
        self.observed_at = Instant::now();
        if !we_hold {
            self.became_leader();
        }
        Ok(true)
    }

    fn renewed(&self) {
        let d = self.lease_duration;
        set_status(|s| {
            s.leading = true;
            s.last_renew = Some(Instant::now());
            s.lease_duration = d;
        });
    }

    fn became_leader(&self) {
        master_status().with_label_values(&[&self.name]).set(1);
        tracing::info!("new leader elected: {}", self.identity);
        self.recorder.event(
            &self.lease_ref(),
            EventType::Normal,
            "LeaderElection",
            format!("{} became leader", self.identity),
        );
    }
}

/// Runs `run` while this process leads (or at once when `--leader-elect=false`).
///
/// `run` receives a token that is cancelled when leadership is lost or
/// `shutdown` fires. Returns `Err("leaderelection lost")` when the lease was
/// lost (upstream components exit then), `Ok(())` on shutdown (releasing the
/// lease) or with `run`'s own result if it ends first.
pub async fn run<F, Fut>(
    client: kube::Client,
    args: &LeaderElectionArgs,
    default_name: &str,
    shutdown: CancellationToken,
    run: F,
) -> Result<()>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let token = shutdown.child_token();
    if !args.leader_elect {
        return run(token).await;
    }
    args.validate()?;
    let mut elector = LeaderElector::new(client, args, default_name);
    tokio::select! {
        _ = elector.acquire() => {}
        _ = shutdown.cancelled() => return Ok(()),
    }
    let mut task = tokio::spawn(run(token.clone()));
    let lost = tokio::select! {
        lost = elector.renew_until_lost(&shutdown) => lost,
        res = &mut task => {
            elector.release().await;
            return res.unwrap_or_else(|e| Err(anyhow::anyhow!("controller task failed: {e}")));
        }
    };
    token.cancel();
    if lost {
        task.abort();
        bail!("leaderelection lost");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), &mut task).await;
    elector.release().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        le: LeaderElectionArgs,
        #[arg()]
        rest: Vec<String>,
    }

    #[test]
    fn flags_and_validation() {
        let c = Cli::parse_from(["x"]);
        assert!(c.le.leader_elect);
        assert_eq!(c.le.lease_duration, Duration::from_secs(15));
        assert_eq!(c.le.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.le.retry_period, Duration::from_secs(2));
        assert_eq!(c.le.resource_namespace, "kube-system");
        c.le.validate().unwrap();
        // A bare --leader-elect does not swallow the next argument.
        let c = Cli::parse_from(["x", "--leader-elect", "pos"]);
        assert!(c.le.leader_elect);
        assert_eq!(c.rest, vec!["pos"]);
        let c = Cli::parse_from([
            "x",
            "--leader-elect=false",
            "--leader-elect-lease-duration=5s",
            "--leader-elect-renew-deadline=10s",
            "--leader-elect-resource-name=foo",
        ]);
        assert!(!c.le.leader_elect);
        assert_eq!(c.le.resource_name.as_deref(), Some("foo"));
        let mut on = c.le.clone();
        on.leader_elect = true;
        assert!(
            on.validate().is_err(),
            "lease duration must exceed renew deadline"
        );
    }

    #[test]
    fn identity_is_hostname_underscore_uuid() {
        let id = new_identity();
        let (host, uuid) = id.rsplit_once('_').unwrap();
        assert_eq!(host, crate::hostname());
        assert!(uuid::Uuid::parse_str(uuid).is_ok());
    }
}
