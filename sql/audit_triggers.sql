-- The audit trail's triggers (sql/audit.sql): one per audited table, all calling
-- auth_internal.audit_change(). The WHEN keeps the cost of an unaudited write to a check of the setting.
CREATE TRIGGER sessions_audit AFTER INSERT OR UPDATE ON auth.sessions FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER users_audit AFTER INSERT OR UPDATE OR DELETE ON auth.users FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER login_attempts_audit AFTER INSERT OR UPDATE ON auth.login_attempts FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER password_resets_audit AFTER INSERT OR UPDATE ON auth.password_resets FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER api_keys_audit AFTER INSERT OR UPDATE ON auth.api_keys FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER keys_audit AFTER INSERT OR UPDATE OR DELETE ON auth.keys FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER revoked_tokens_audit AFTER INSERT ON auth.revoked_tokens FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER mfa_factors_audit AFTER INSERT OR UPDATE OR DELETE ON auth.mfa_factors FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER recovery_codes_audit AFTER UPDATE ON auth.recovery_codes FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER one_time_codes_audit AFTER INSERT OR UPDATE ON auth.one_time_codes FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER identities_audit AFTER INSERT OR DELETE ON auth.identities FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER provider_keys_audit AFTER INSERT OR UPDATE ON auth.provider_keys FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
