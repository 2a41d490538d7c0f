# Dagster with the testbed's pinned versions and sample code location (replace with yours).
FROM python:3.11-slim
COPY testbed/dagster/requirements.txt /opt/dagster/requirements.txt
RUN pip install --no-cache-dir -r /opt/dagster/requirements.txt
COPY testbed/dagster/sample_project /opt/dagster/app
COPY docker/dagster.yaml /opt/dagster/home/dagster.yaml
COPY docker/workspace.yaml /opt/dagster/app/workspace.yaml
ENV DAGSTER_HOME=/opt/dagster/home
WORKDIR /opt/dagster/app
