//! STUB (replaced by the duo-bypass-codes module).
use zeroize::Zeroizing;
/// Stub.
pub struct DuoConfig;
impl DuoConfig {
    /// Stub.
    pub fn parse(_json: &str) -> Result<Self, String> {
        Err("not built yet".into())
    }
    /// Stub.
    pub fn to_canonical_json(&self) -> String {
        String::new()
    }
}
/// Stub.
#[allow(dead_code)] // stub
pub struct DuoSecretKey(Zeroizing<String>);
impl DuoSecretKey {
    /// Stub.
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }
}
/// Stub.
pub struct BypassCodes(Zeroizing<Vec<u8>>);
impl BypassCodes {
    /// Stub.
    pub fn into_lines(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}
/// Stub.
pub fn new_bypass_codes(
    _c: &DuoConfig,
    _k: &DuoSecretKey,
    _now: chrono::DateTime<chrono::Utc>,
) -> Result<BypassCodes, String> {
    Err("not built yet".into())
}
