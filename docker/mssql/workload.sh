#!/bin/bash
# The SQL Server demo application: calls dbo.customer_orders for small customers, and every few
# minutes lets the one huge customer compile the procedure first. Its cached plan then scans the
# whole table for every small customer too (a real parameter-sensitive plan regression that Query
# Store records as a second plan); the next recompile for a small customer restores the seek.
set -u
sqlcmd=(/opt/mssql-tools18/bin/sqlcmd -C -S mssql -U sa -P "$MSSQL_SA_PASSWORD" -d planmon_demo -b)
small_customers="DECLARE @i int = 0; WHILE @i < 3000 BEGIN
  EXEC dbo.customer_orders @customer_id = 2 + ABS(CHECKSUM(NEWID())) % 5000; SET @i += 1; END"
while true; do
  "${sqlcmd[@]}" -Q "EXEC sp_recompile N'dbo.customer_orders'; EXEC dbo.customer_orders @customer_id = 7;" >/dev/null
  "${sqlcmd[@]}" -Q "$small_customers" >/dev/null
  sleep 300
  "${sqlcmd[@]}" -Q "EXEC sp_recompile N'dbo.customer_orders'; EXEC dbo.customer_orders @customer_id = 1;" >/dev/null
  "${sqlcmd[@]}" -Q "$small_customers" >/dev/null
  sleep 300
done
