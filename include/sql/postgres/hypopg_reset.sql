-- Drop every hypothetical index of this backend (hypopg), before the prediction's transaction is
-- rolled back: the session may be reused.
-- reads: hypopg_reset() (https://hypopg.readthedocs.io/en/latest/usage.html)
-- minimum version: 13, hypopg 1.1
-- permission: EXECUTE on hypopg's functions
/* planmon */
SELECT /* planmon */ hypopg_reset() AS reset
