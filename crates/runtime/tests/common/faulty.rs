//! A store that forwards to a real one and, when armed, reports a turn commit that landed as
//! failed ("store unavailable"), as a connection lost during COMMIT does: the caller cannot
//! tell whether its commit is durable.

use async_trait::async_trait;
use durable_core::HistoryEvent;
use durable_store::{
    ActivityLease, ActivityOutcome, ActivityWorkItem, CreateInstance, Error, InstancePage, InstanceQuery,
    InstanceState, OrchestrationLease, OrchestrationWorkItem, PurgeFilter, Result, Store, StoreMetrics,
    TurnCommit,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub(crate) struct LandedButFailed {
    pub inner: Arc<dyn Store>,
    /// The next turn commit is carried out, then reported as failed.
    pub armed: AtomicBool,
}

impl LandedButFailed {
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        LandedButFailed { inner, armed: AtomicBool::new(false) }
    }
}

#[async_trait]
impl Store for LandedButFailed {
    async fn create_instance(&self, request: CreateInstance) -> Result<()> {
        self.inner.create_instance(request).await
    }
    async fn send_message(&self, instance_id: &str, event: HistoryEvent) -> Result<()> {
        self.inner.send_message(instance_id, event).await
    }
    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceState>> {
        self.inner.get_instance(instance_id).await
    }
    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>> {
        self.inner.read_history(instance_id).await
    }
    async fn query_instances(&self, query: &InstanceQuery) -> Result<InstancePage> {
        self.inner.query_instances(query).await
    }
    async fn count_instances(&self) -> Result<durable_store::StatusCounts> {
        self.inner.count_instances().await
    }
    async fn purge_instance(&self, instance_id: &str) -> Result<u64> {
        self.inner.purge_instance(instance_id).await
    }
    async fn purge_instances(&self, filter: &PurgeFilter) -> Result<u64> {
        self.inner.purge_instances(filter).await
    }
    fn listen_for_completion(&self, instance_id: &str) -> tokio::sync::oneshot::Receiver<()> {
        self.inner.listen_for_completion(instance_id)
    }
    async fn fetch_orchestration_work(
        &self,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<OrchestrationWorkItem>> {
        self.inner.fetch_orchestration_work(max, lease).await
    }
    async fn commit_turn(&self, commit: TurnCommit) -> Result<()> {
        self.inner.commit_turn(commit).await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            return Err(Error::Unavailable("injected: the connection was lost during COMMIT".into()));
        }
        Ok(())
    }
    async fn rewind_instance(&self, rewind: durable_store::RewindCommit) -> Result<()> {
        self.inner.rewind_instance(rewind).await
    }
    async fn set_stall(&self, instance_id: &str, reason: Option<&str>) -> Result<()> {
        self.inner.set_stall(instance_id, reason).await
    }
    async fn lease_instance(
        &self,
        instance_id: &str,
        lease: Duration,
    ) -> Result<Option<OrchestrationWorkItem>> {
        self.inner.lease_instance(instance_id, lease).await
    }
    async fn abandon_orchestration_work(
        &self,
        lease: &OrchestrationLease,
        retry_after: Duration,
    ) -> Result<()> {
        self.inner.abandon_orchestration_work(lease, retry_after).await
    }
    async fn renew_orchestration_lease(
        &self,
        lease: &OrchestrationLease,
        duration: Duration,
    ) -> Result<OrchestrationLease> {
        self.inner.renew_orchestration_lease(lease, duration).await
    }
    async fn wait_for_orchestration_work(&self, max_wait: Duration) {
        self.inner.wait_for_orchestration_work(max_wait).await;
    }
    async fn fetch_activity_work(&self, max: usize, lease: Duration) -> Result<Vec<ActivityWorkItem>> {
        self.inner.fetch_activity_work(max, lease).await
    }
    async fn complete_activity(&self, lease: &ActivityLease, outcome: ActivityOutcome) -> Result<()> {
        self.inner.complete_activity(lease, outcome).await
    }
    async fn abandon_activity_work(&self, lease: &ActivityLease, retry_after: Duration) -> Result<()> {
        self.inner.abandon_activity_work(lease, retry_after).await
    }
    async fn renew_activity_lease(&self, lease: &ActivityLease, duration: Duration) -> Result<ActivityLease> {
        self.inner.renew_activity_lease(lease, duration).await
    }
    async fn wait_for_activity_work(&self, max_wait: Duration) {
        self.inner.wait_for_activity_work(max_wait).await;
    }
    async fn backlog(&self) -> Result<durable_store::Backlog> {
        self.inner.backlog().await
    }
    fn metrics(&self) -> StoreMetrics {
        self.inner.metrics()
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}
