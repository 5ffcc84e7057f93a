-- planmon's repository lives beside Airflow's metadata in the stack's PostgreSQL.
CREATE DATABASE planmon OWNER airflow;
