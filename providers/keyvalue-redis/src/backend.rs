//! Turning a link into a store: which server.

use trellis_provider_sdk::ProviderLink;
use trellis_provider_sdk::keyvalue::KvBackend;

use crate::{RedisStore, RedisStoreError, redact_url};

/// The link target config keys naming the server, in order of preference.
pub const URL_KEYS: [&str; 2] = ["url", "URL"];

/// The link secret holding the server's password, if it needs one: kept
/// out of the URL, and so out of named config.
pub const PASSWORD_SECRET: &str = "password";

/// Opens a [`RedisStore`] for each link, from its `url` target config.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedisBackend;

impl RedisBackend {
    /// The server URL `link` names.
    pub fn url_of(link: &ProviderLink) -> Result<&str, RedisStoreError> {
        URL_KEYS
            .iter()
            .find_map(|key| link.target_config_values.get(*key))
            .map(|url| url.trim())
            .filter(|url| !url.is_empty())
            .ok_or_else(|| RedisStoreError::NoUrl {
                source_id: link.link.source_id.clone(),
                link_name: link.link.name.clone(),
            })
    }
}

impl KvBackend for RedisBackend {
    const NAME: &'static str = "redis";
    type Store = RedisStore;

    async fn open(&self, link: &ProviderLink) -> Result<RedisStore, String> {
        let url = Self::url_of(link).map_err(|e| e.to_string())?;
        let password = link
            .secret_values
            .get(PASSWORD_SECRET)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let store = RedisStore::connect_with(url, password.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            source_id = %link.link.source_id,
            link_name = %link.link.name,
            url = %redact_url(url),
            "Redis store open"
        );
        Ok(store)
    }
}
