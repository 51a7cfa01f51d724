//! The background worker that keeps identity providers' keys fresh: with pg_auth in
//! `shared_preload_libraries`, one worker per database named in `pg_auth.jwks_databases` runs
//! `auth_internal.refresh_due_provider_keys()` every `pg_auth.jwks_check_interval` seconds. That
//! SQL decides which providers are due (their refresh interval passed, the last fetch failed,
//! or a token named an unknown kid) and never fetches one more often than
//! `pg_auth.jwks_min_refresh_interval`. A database without pg_auth 0.4.0 is skipped.

use std::ffi::CString;
use std::time::Duration;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

pub static DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static CHECK_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(5);

/// Called from `_PG_init` in every process. `pg_auth.jwks_databases` is defined, and the workers
/// registered, only while the postmaster loads `shared_preload_libraries` (a PGC_POSTMASTER
/// setting defined later is a FATAL error): set it in postgresql.conf.
pub fn define() {
    GucRegistry::define_int_guc(
        c"pg_auth.jwks_check_interval",
        c"Seconds between the JWKS worker's checks for identity-provider keys that are due.",
        c"",
        &CHECK_INTERVAL,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::default(),
    );
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    GucRegistry::define_string_guc(
        c"pg_auth.jwks_databases",
        c"Comma-separated databases in which a background worker keeps identity-provider keys fresh (needs pg_auth in shared_preload_libraries).",
        c"",
        &DATABASES,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    let databases = DATABASES
        .get()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    for database in databases
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        BackgroundWorkerBuilder::new(&format!("pg_auth jwks {database}"))
            .set_type("pg_auth jwks")
            .set_library("pg_auth")
            .set_function("pg_auth_jwks_worker")
            .set_extra(database)
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(Some(Duration::from_secs(30)))
            .load();
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_auth_jwks_worker(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    log!("pg_auth: keeping identity-provider keys fresh in database \"{database}\"");
    loop {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        refresh_due_keys();
        let wait = Duration::from_secs(CHECK_INTERVAL.get().max(1) as u64);
        if !BackgroundWorker::wait_latch(Some(wait)) {
            break;
        }
    }
}

/// One check: which providers are due, then each fetched and stored in a transaction of its
/// own, so no provider's row stays locked while another's keys are fetched. An error ends the
/// worker (the postmaster starts it again after 30 seconds); fetch failures do not raise (they
/// are recorded per provider).
fn refresh_due_keys() {
    let due = BackgroundWorker::transaction(|| {
        let installed = Spi::get_one::<bool>(
            "SELECT pg_catalog.to_regprocedure('auth_internal.due_provider_names()') IS NOT NULL",
        );
        match installed {
            Ok(Some(true)) => {
                Spi::get_one::<Vec<String>>("SELECT auth_internal.due_provider_names()")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        }
    });
    for name in due {
        if BackgroundWorker::sigterm_received() {
            return;
        }
        BackgroundWorker::transaction(|| {
            let refreshed = Spi::run_with_args(
                "SELECT auth.refresh_provider_keys($1)",
                &[name.as_str().into()],
            );
            if let Err(e) = refreshed {
                warning!("pg_auth: refreshing the keys of identity provider {name} failed: {e}");
            }
        });
    }
}
