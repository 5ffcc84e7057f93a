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
