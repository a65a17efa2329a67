//! STUB (replaced by the ldap/ad module).
use zeroize::Zeroizing;
/// Stub.
pub struct LdapConfig;
impl LdapConfig {
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
pub struct BindPassword(Zeroizing<String>);
impl BindPassword {
    /// Stub.
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }
}
/// Stub.
#[derive(Debug)]
pub struct LdapError(String);
impl std::fmt::Display for LdapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl LdapError {
    /// Stub.
    pub fn target_changed(&self) -> bool {
        false
    }
}
/// Stub.
pub fn set_ldap_password(_c: &LdapConfig, _b: &BindPassword, _v: &[u8]) -> Result<(), LdapError> {
    Err(LdapError("not built yet".into()))
}
/// Stub.
pub fn set_ad_password(_c: &LdapConfig, _b: &BindPassword, _v: &[u8]) -> Result<(), LdapError> {
    Err(LdapError("not built yet".into()))
}
