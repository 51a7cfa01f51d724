//! Reading pg_auth's private tables (`auth.keys`, `auth.revoked_tokens`) on behalf of any caller.
//!
//! For one fixed query we run as the table's owner, the way a SECURITY DEFINER function would:
//! callers never get read access to key material, yet every role can verify tokens, and
//! `auth.authenticate` — which must run as the caller, since a definer function cannot switch
//! roles — can too.

use pgrx::pg_sys;

pub struct AsOwner {
    user: pg_sys::Oid,
    context: i32,
}

impl AsOwner {
    /// Becomes `owner` until the returned guard is dropped (or the transaction aborts, which
    /// restores the user id too).
    pub fn switch(owner: pg_sys::Oid) -> AsOwner {
        let (mut user, mut context) = (pg_sys::InvalidOid, 0);
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            let restricted = (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
            pg_sys::SetUserIdAndSecContext(owner, context | restricted);
        }
        AsOwner { user, context }
    }
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}
