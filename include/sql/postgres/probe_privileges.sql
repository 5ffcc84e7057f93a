-- The probe login's attributes and its memberships in the predefined roles a probe must not have
--   (planmon.engines.postgres.probe_privileges decides; docs/probes.md, "The probe login").
--   pg_has_role(..., 'MEMBER') counts direct and indirect membership, with or without INHERIT (a
--   member can SET ROLE to it); the oid form skips roles this version does not have.
-- reads: pg_roles
-- minimum version: 13
-- permission: none (pg_roles is readable by every role)
/* planmon */
SELECT /* planmon */
    r.rolname AS login,
    r.rolsuper,
    r.rolreplication,
    r.rolbypassrls,
    r.rolcreaterole,
    ARRAY(
        SELECT g.rolname::text
        FROM pg_roles AS g
        WHERE g.rolname = ANY (%(roles)s) AND g.oid <> r.oid AND pg_has_role(r.oid, g.oid, 'MEMBER')
        ORDER BY g.rolname
    ) AS member_of
FROM pg_roles AS r
WHERE r.rolname = current_user
