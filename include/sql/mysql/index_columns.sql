-- What: the key parts of every index on the listed tables of one schema, in order, from which the
--   adapter rebuilds CREATE INDEX definitions. :database is the schema, :tables a JSON array of names.
-- reads: information_schema.STATISTICS (https://dev.mysql.com/doc/refman/8.0/en/information-schema-statistics-table.html)
-- minimum version: MySQL 8.0, MariaDB 10.6 (JSON_TABLE)
-- permission: any privilege on the tables (information_schema shows only what the user may see)
/* planmon */ SELECT
    planmon.TABLE_SCHEMA AS table_schema,
    planmon.TABLE_NAME AS table_name,
    planmon.INDEX_NAME AS index_name,
    planmon.NON_UNIQUE AS non_unique,
    planmon.SEQ_IN_INDEX AS seq_in_index,
    planmon.COLUMN_NAME AS column_name,
    planmon.SUB_PART AS sub_part,
    planmon.COLLATION AS collation,
    planmon.INDEX_TYPE AS index_type
FROM information_schema.STATISTICS AS planmon
WHERE planmon.TABLE_SCHEMA = :database
  AND planmon.TABLE_NAME IN (
        SELECT listed.name
        FROM JSON_TABLE(:tables, '$[*]' COLUMNS (name VARCHAR(64) PATH '$')) AS listed
    )
ORDER BY planmon.TABLE_NAME, planmon.INDEX_NAME, planmon.SEQ_IN_INDEX
