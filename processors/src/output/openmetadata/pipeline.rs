//! The pipeline service and the pipelines with their tasks.

use std::collections::{BTreeMap, BTreeSet};

use lineage_schemas::records::{
    AssetDefinition, OpenMetadataOperation, Operation, Origin, PipelineTask, UpsertPipeline,
    UpsertPipelineService, fqn_of,
};

use super::tags::{tag_fqn, tag_operations};
use crate::output::{OutputSettings, RunContext, asset_job_name, asset_step_key};

/// The pipeline service of a tenant (one per Dagster deployment, named after it).
pub fn pipeline_service(
    tenant: &str,
    origin: &Origin,
    settings: &OutputSettings,
) -> OpenMetadataOperation {
    OpenMetadataOperation {
        tenant: tenant.to_owned(),
        origin: origin.clone(),
        operation: Operation::UpsertPipelineService(UpsertPipelineService {
            name: tenant.to_owned(),
            service_type: "Dagster".to_owned(),
            description: Some(format!(
                "Dagster deployment `{tenant}`, written by lineage-bus."
            )),
            host_port: settings.dagster_url.clone(),
        }),
    }
}

/// The stable pipeline name of a job: `job@code_location` (`job` when the location is not
/// known). Unlike OpenMetadata's connector, no hash of the code-location origin: the name
/// survives redeploys, Python upgrades and moved files.
pub fn pipeline_name(job_name: &str, code_location: Option<&str>) -> String {
    match code_location {
        Some(location) if !location.is_empty() => format!("{job_name}@{location}"),
        _ => job_name.to_owned(),
    }
}

/// The FQN of a pipeline: `service.name`, each part quoted when it holds a `.`.
pub fn pipeline_fqn(service: &str, pipeline_name: &str) -> String {
    fqn_of(&[service, pipeline_name])
}

/// What is known of a Dagster job.
#[derive(Debug, Clone, Copy)]
pub struct JobSpec<'a> {
    /// Dagster deployment.
    pub tenant: &'a str,
    /// Job name.
    pub job_name: &'a str,
    /// Code location.
    pub code_location: Option<&'a str>,
    /// A run of the job, for its tags (job tags and user run tags) and repository.
    pub run: Option<&'a RunContext>,
    /// The assets the job materializes (definitions whose `job_names` hold the job).
    pub assets: &'a [&'a AssetDefinition],
    /// Step keys seen in runs of the job (op jobs have no asset definitions).
    pub steps: &'a [String],
}

/// The operations that describe a job: the tag classification and tags it uses, then the
/// pipeline with its tasks and owners.
///
/// Tasks are the job's asset steps (`a__b__c`), their checks (`a__b__c_<check>`) and any other
/// step seen. An asset's step lists the steps of the assets that depend on it (in the job) and
/// its checks in `downstreamTasks`: the edge goes from upstream to downstream.
pub fn pipeline_operations(
    job: &JobSpec<'_>,
    origin: &Origin,
    settings: &OutputSettings,
) -> Vec<OpenMetadataOperation> {
    let mut tasks: BTreeMap<String, PipelineTask> = BTreeMap::new();
    let mut task_tags: Vec<(&str, &str)> = Vec::new();
    for asset in job.assets {
        let step = asset_step_key(&asset.asset_key);
        let own_tags: Vec<(&str, &str)> = asset
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(asset.kinds.iter().map(|kind| ("kind", kind.as_str())))
            .collect();
        task_tags.extend(own_tags.iter().copied());
        let mut downstream: BTreeSet<String> = asset
            .checks
            .iter()
            .map(|check| format!("{step}_{check}"))
            .collect();
        for other in job.assets {
            if other.deps.iter().any(|dep| dep == &asset.asset_key) {
                downstream.insert(asset_step_key(&other.asset_key));
            }
        }
        for check in &asset.checks {
            tasks.insert(
                format!("{step}_{check}"),
                task(
                    format!("{step}_{check}"),
                    Some(format!(
                        "{} check {check}",
                        asset_job_name(&asset.asset_key)
                    )),
                    None,
                    "ASSET_CHECK",
                    Vec::new(),
                    Vec::new(),
                ),
            );
        }
        let tags = own_tags
            .iter()
            .map(|(k, v)| tag_fqn(settings, k, v))
            .collect();
        tasks.insert(
            step.clone(),
            task(
                step,
                Some(asset_job_name(&asset.asset_key)),
                asset.description.clone(),
                "ASSET",
                downstream.into_iter().collect(),
                tags,
            ),
        );
    }
    for step in job.steps {
        if !tasks.contains_key(step) {
            tasks.insert(
                step.clone(),
                task(step.clone(), None, None, "OP", Vec::new(), Vec::new()),
            );
        }
    }

    let pipeline_tags: Vec<(&str, &str)> = job
        .run
        .map(|run| {
            run.tags
                .iter()
                .filter(|(key, _)| !key.starts_with('.') && !key.starts_with("dagster/"))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let owners: BTreeSet<String> = job
        .assets
        .iter()
        .flat_map(|asset| asset.owners.iter().cloned())
        .collect();
    let name = pipeline_name(job.job_name, job.code_location);
    let source_url = settings.dagster_url.as_deref().map(|base| {
        let repository = job
            .run
            .and_then(|run| run.tags.get(".dagster/repository"))
            .cloned()
            .or_else(|| job.code_location.map(|l| format!("__repository__@{l}")));
        match repository {
            Some(repository) => format!(
                "{}/locations/{repository}/jobs/{}",
                base.trim_end_matches('/'),
                job.job_name
            ),
            None => format!("{}/jobs/{}", base.trim_end_matches('/'), job.job_name),
        }
    });

    let mut ops = tag_operations(
        job.tenant,
        origin,
        settings,
        pipeline_tags.iter().chain(task_tags.iter()).copied(),
    );
    ops.push(OpenMetadataOperation {
        tenant: job.tenant.to_owned(),
        origin: origin.clone(),
        operation: Operation::UpsertPipeline(UpsertPipeline {
            service: job.tenant.to_owned(),
            name,
            display_name: Some(job.job_name.to_owned()),
            description: None,
            source_url,
            location: job.code_location.map(str::to_owned),
            tasks: tasks.into_values().collect(),
            tags: pipeline_tags
                .iter()
                .map(|(k, v)| tag_fqn(settings, k, v))
                .collect(),
            owners: owners.into_iter().collect(),
        }),
    });
    ops
}

fn task(
    name: String,
    display_name: Option<String>,
    description: Option<String>,
    task_type: &str,
    downstream_tasks: Vec<String>,
    tags: Vec<String>,
) -> PipelineTask {
    PipelineTask {
        name,
        display_name,
        description,
        task_type: Some(task_type.to_owned()),
        downstream_tasks,
        tags,
    }
}
