//! The cluster's hosts as the controller reaches them: found in discoverd (service
//! `flynn-host`, instance id = host id), called with the host API's token. One-off jobs,
//! kills and app logs go through here.

use discoverd_api::client::Client as Discoverd;
use flynn_http::Endpoint;
use host_api::client::Client as HostClient;

use crate::error::ControllerError;

pub use host_api::HOST_SERVICE as SERVICE;

/// How the controller reaches hosts.
#[derive(Debug, Clone)]
pub struct Hosts {
    discoverd: Discoverd,
    token: Option<String>,
}

impl Hosts {
    /// Hosts listed by discoverd at `discoverd`, called with `token`.
    pub fn new(discoverd: Endpoint, token: Option<String>) -> Self {
        Self {
            discoverd: Discoverd::new(discoverd),
            token,
        }
    }

    /// Every registered host: its id and a client of its API.
    pub async fn list(&self) -> Result<Vec<(String, HostClient)>, ControllerError> {
        self.registered(|_| true).await
    }

    /// The registered hosts whose registration passes `keep`.
    async fn registered(
        &self,
        keep: impl Fn(&discoverd_api::Instance) -> bool,
    ) -> Result<Vec<(String, HostClient)>, ControllerError> {
        let instances = self
            .discoverd
            .instances(SERVICE)
            .await
            .map_err(|e| ControllerError::Discoverd(Box::new(e)))?;
        Ok(instances
            .into_iter()
            .filter(|i| keep(i))
            .map(|i| {
                let client = HostClient::new(Endpoint::Tcp(i.addr), self.token.clone());
                (i.id, client)
            })
            .collect())
    }

    /// Host `id`'s API.
    pub async fn get(&self, id: &str) -> Result<HostClient, ControllerError> {
        self.list()
            .await?
            .into_iter()
            .find(|(h, _)| h == id)
            .map(|(_, c)| c)
            .ok_or_else(|| ControllerError::HostGone(id.to_string()))
    }

    /// A host picked at random among those not draining (one-off jobs spread across the
    /// cluster; a draining host says so in its registration's metadata).
    pub async fn any(&self) -> Result<(String, HostClient), ControllerError> {
        let mut all = self.registered(|i| !host_api::is_draining(&i.meta)).await?;
        if all.is_empty() {
            return Err(ControllerError::NoHosts);
        }
        let i = (uuid::Uuid::new_v4().as_u128() % all.len() as u128) as usize;
        Ok(all.swap_remove(i))
    }
}
