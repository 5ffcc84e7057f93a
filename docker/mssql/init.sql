-- Demo database for planmon with Query Store on, and a monitoring login with least privilege
-- (VIEW SERVER STATE, VIEW DATABASE STATE). The password comes from the environment through the
-- sqlcmd scripting variable $(PLANMON_MONITOR_PASSWORD); it is never written in this file.
IF DB_ID(N'planmon_demo') IS NULL
    CREATE DATABASE planmon_demo;
GO
ALTER DATABASE planmon_demo SET QUERY_STORE = ON;
ALTER DATABASE planmon_demo SET QUERY_STORE (
    OPERATION_MODE = READ_WRITE,
    INTERVAL_LENGTH_MINUTES = 15,
    QUERY_CAPTURE_MODE = AUTO,
    MAX_STORAGE_SIZE_MB = 512
);
GO
IF SUSER_ID(N'planmon_monitor') IS NULL
    CREATE LOGIN planmon_monitor WITH PASSWORD = N'$(PLANMON_MONITOR_PASSWORD)', CHECK_POLICY = ON;
GO
GRANT VIEW SERVER STATE TO planmon_monitor;
GO
USE planmon_demo;
GO
IF USER_ID(N'planmon_monitor') IS NULL
    CREATE USER planmon_monitor FOR LOGIN planmon_monitor;
GRANT VIEW DATABASE STATE TO planmon_monitor;
GO
IF SUSER_ID(N'planmon_remediation') IS NULL
    CREATE LOGIN planmon_remediation WITH PASSWORD = N'$(PLANMON_REMEDIATION_PASSWORD)', CHECK_POLICY = ON;
GO
IF USER_ID(N'planmon_remediation') IS NULL
    CREATE USER planmon_remediation FOR LOGIN planmon_remediation;
-- forcing and unforcing Query Store plans, hints and UPDATE STATISTICS need ALTER on the database
GRANT ALTER ON DATABASE::planmon_demo TO planmon_remediation;
GRANT VIEW DATABASE STATE TO planmon_remediation;
GO
-- The demo application's data: one customer owns half of the orders (skew that makes the plan of
-- dbo.customer_orders depend on the first parameter it is compiled for).
IF OBJECT_ID(N'dbo.orders') IS NULL
BEGIN
    CREATE TABLE dbo.orders (
        id int IDENTITY PRIMARY KEY,
        customer_id int NOT NULL,
        ordered_at datetime2 NOT NULL,
        status varchar(16) NOT NULL,
        total decimal(12, 2) NOT NULL,
        note varchar(200) NOT NULL
    );
    WITH n AS (
        SELECT TOP (1000000) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS i
        FROM sys.all_objects a CROSS JOIN sys.all_objects b
    )
    INSERT INTO dbo.orders (customer_id, ordered_at, status, total, note)
    SELECT CASE WHEN i % 2 = 0 THEN 1 ELSE 2 + i % 5000 END,
           DATEADD(MINUTE, i, '2026-01-01'), CASE i % 3 WHEN 0 THEN 'paid' WHEN 1 THEN 'shipped' ELSE 'returned' END,
           10 + i % 500, REPLICATE('x', 100)
    FROM n;
    CREATE INDEX orders_customer_id ON dbo.orders (customer_id);
END
GO
CREATE OR ALTER PROCEDURE dbo.customer_orders @customer_id int
AS
    SELECT id, ordered_at, status, total, note FROM dbo.orders WHERE customer_id = @customer_id;
GO
