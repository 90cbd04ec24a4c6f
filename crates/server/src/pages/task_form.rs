//! The new-task form: generated from the chosen task type (defaults prefilled, required
//! variables marked, file pickers for file variables, custom rows, priority), and its submit,
//! which streams uploads into a staged folder and shows mistakes in the form, keeping what
//! was typed.

use std::collections::BTreeMap;
use std::path::Path;

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use blanket_core::coordinator::StagedUpload;
use blanket_core::task_type::Catalog;
use blanket_core::upload::UploadNames;
use blanket_core::wire::NewTask;
use tokio::io::AsyncWriteExt;

use super::views::{self, Chrome, Nav};
use super::{Hx, PageError, render, see_other};
use crate::AppState;
use crate::error::ApiQuery;

/// `GET /ui/tasks/new?type=NAME`: the new-task form as a page of its own.
pub async fn tasks_new_page(State(state): State<AppState>, query: ApiQuery) -> Response {
    let form = NewTaskForm::blank(&state.coordinator.catalog(), query.get("type"), true);
    let page = NewTaskPage {
        chrome: Chrome::new("New task", Nav::Tasks),
        form,
    };
    render(StatusCode::OK, &page)
}

/// `GET /ui/partials/new-task?type=NAME`: the new-task form for the panel of the list page.
pub async fn new_task_partial(State(state): State<AppState>, query: ApiQuery) -> Response {
    let form = NewTaskForm::blank(&state.coordinator.catalog(), query.get("type"), false);
    render(StatusCode::OK, &NewTaskPartial { form })
}

/// `GET /ui/partials/task-type-env?type=NAME`: the variable fields of one type.
pub async fn task_type_env_partial(State(state): State<AppState>, query: ApiQuery) -> Response {
    let form = NewTaskForm::blank(&state.coordinator.catalog(), query.get("type"), false);
    render(StatusCode::OK, &TaskTypeEnvPartial { form })
}

/// `GET /ui/partials/custom-env-row`: one more blank custom variable row.
pub async fn custom_env_row_partial() -> Response {
    let partial = CustomEnvRowPartial {
        custom: CustomVariable::default(),
    };
    render(StatusCode::OK, &partial)
}

/// `POST /ui/tasks`: submits the new-task form (multipart with files, or url-encoded).
/// Success goes to the task's page (or, for htmx, answers a notice in place of the form);
/// a mistake answers the form again, 422, with the message and what was typed.
pub async fn tasks_create(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    request: Request,
) -> Response {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("multipart/form-data"));
    let mut upload = None;
    let submitted = if is_multipart {
        match Multipart::from_request(request, &state).await {
            Ok(mut multipart) => read_multipart(&state, &mut multipart, &mut upload).await,
            Err(rejection) => Err((
                SubmittedForm::default(),
                format!("the form could not be read: {}", rejection.body_text()),
            )),
        }
    } else {
        match Form::<Vec<(String, String)>>::from_request(request, &state).await {
            Ok(Form(pairs)) => Ok(SubmittedForm::from_pairs(pairs)),
            Err(rejection) => Err((
                SubmittedForm::default(),
                format!("the form could not be read: {}", rejection.body_text()),
            )),
        }
    };
    let catalog = state.coordinator.catalog();
    let outcome = match submitted {
        Ok(form) => match form.to_new_task(&catalog) {
            Ok(new_task) => match state.coordinator.submit(new_task, upload.take()).await {
                Ok(task) => Ok(task),
                Err(error) => Err((form, PageError::from(error).message)),
            },
            Err(message) => Err((form, message)),
        },
        Err(failure) => Err(failure),
    };
    // A rejected submit leaves no staged files behind (the coordinator cleans up its own).
    if let Some(upload) = upload {
        discard_upload(&upload).await;
    }
    match outcome {
        Ok(task) if htmx => {
            let done = NewTaskDone {
                id: task.id.to_string(),
                short_id: views::short_id(&task.id.to_string()),
                task_type: task.task_type.clone(),
            };
            render(StatusCode::OK, &done)
        }
        Ok(task) => see_other(&format!("/ui/tasks/{}", task.id)),
        Err((form, message)) => {
            let standalone = form.standalone || !htmx;
            let form = NewTaskForm::refilled(&catalog, &form, message, standalone);
            if htmx {
                render(StatusCode::UNPROCESSABLE_ENTITY, &NewTaskPartial { form })
            } else {
                let page = NewTaskPage {
                    chrome: Chrome::new("New task", Nav::Tasks),
                    form,
                };
                render(StatusCode::UNPROCESSABLE_ENTITY, &page)
            }
        }
    }
}

#[derive(Template)]
#[template(path = "task_new.html")]
struct NewTaskPage {
    chrome: Chrome,
    form: NewTaskForm,
}

#[derive(Template)]
#[template(path = "new_task_form.html")]
struct NewTaskPartial {
    form: NewTaskForm,
}

#[derive(Template)]
#[template(path = "task_type_env.html")]
struct TaskTypeEnvPartial {
    form: NewTaskForm,
}

#[derive(Template)]
#[template(path = "custom_env_row.html")]
struct CustomEnvRowPartial {
    custom: CustomVariable,
}

#[derive(Template)]
#[template(path = "new_task_done.html")]
struct NewTaskDone {
    id: String,
    short_id: String,
    task_type: String,
}

/// What the new-task form carried, kept to show it again after a mistake.
#[derive(Debug, Default)]
struct SubmittedForm {
    task_type: String,
    environment: Vec<(String, String)>,
    custom_names: Vec<String>,
    custom_values: Vec<String>,
    priority: String,
    /// Variables set by a file input: (variable, saved file name).
    file_variables: Vec<(String, String)>,
    /// Whether any file was attached (it cannot be shown again).
    had_files: bool,
    /// Whether the form was a page of its own rather than a panel of the list.
    standalone: bool,
}

impl SubmittedForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> SubmittedForm {
        let mut form = SubmittedForm::default();
        for (name, value) in pairs {
            form.take_text(&name, value);
        }
        form
    }

    fn take_text(&mut self, name: &str, value: String) {
        match name {
            "type" => self.task_type = value,
            "priority" => self.priority = value,
            "customEnvName" => self.custom_names.push(value),
            "customEnvValue" => self.custom_values.push(value),
            "standalone" => self.standalone = !value.is_empty(),
            _ => {
                if let Some(variable) = name.strip_prefix("env.") {
                    self.environment.push((variable.to_string(), value));
                }
            }
        }
    }

    /// The submit request, or a message for the person who filled in the form.
    fn to_new_task(&self, catalog: &Catalog) -> Result<NewTask, String> {
        let task_type = self.task_type.trim();
        if task_type.is_empty() {
            return Err("Choose a task type first.".into());
        }
        let mut environment = BTreeMap::new();
        for (name, value) in &self.environment {
            if !value.is_empty() {
                environment.insert(name.clone(), value.clone());
            }
        }
        for (variable, file_name) in &self.file_variables {
            environment
                .entry(variable.clone())
                .or_insert_with(|| file_name.clone());
        }
        for (index, name) in self.custom_names.iter().enumerate() {
            let value = self.custom_values.get(index).cloned().unwrap_or_default();
            let name = name.trim();
            if name.is_empty() {
                if !value.is_empty() {
                    return Err(format!(
                        "The custom value {value:?} has no variable name: give it a name or clear it."
                    ));
                }
                continue;
            }
            environment.insert(name.to_string(), value);
        }
        let priority = match self.priority.trim() {
            "" => 0,
            text => text.parse::<i64>().map_err(|_| {
                format!("Priority {text:?} is not a whole number: use 0, or e.g. 10 to run it before others.")
            })?,
        };
        if let Some(loaded) = catalog.get(task_type) {
            let missing: Vec<&str> = loaded
                .spec
                .environment
                .required
                .iter()
                .filter(|variable| environment.get(&variable.name).is_none_or(String::is_empty))
                .map(|variable| variable.name.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "Fill in the required {}: {}.",
                    if missing.len() == 1 {
                        "variable"
                    } else {
                        "variables"
                    },
                    missing.join(", ")
                ));
            }
        }
        Ok(NewTask {
            task_type: task_type.to_string(),
            environment,
            priority,
            tags: Vec::new(),
            timeout: None,
        })
    }
}

/// Reads the multipart new-task form, streaming each attached file into a staged upload
/// folder (created on the first file) and never holding a file in memory.
async fn read_multipart(
    state: &AppState,
    multipart: &mut Multipart,
    upload: &mut Option<StagedUpload>,
) -> Result<SubmittedForm, (SubmittedForm, String)> {
    let mut form = SubmittedForm::default();
    let limit = state.options.max_upload_bytes;
    let mut received: u64 = 0;
    let mut upload_names = UploadNames::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                let message = format!("the form could not be read: {}", error.body_text());
                return Err((form, message));
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_variable = name.strip_prefix("file.").map(str::to_string);
        if file_variable.is_none() && name != "files" {
            match field.text().await {
                Ok(text) => form.take_text(&name, text),
                Err(error) => {
                    let message = format!("the form could not be read: {}", error.body_text());
                    return Err((form, message));
                }
            }
            continue;
        }
        let file_name = field.file_name().unwrap_or_default().to_string();
        if file_name.is_empty() {
            // An empty file input still sends a part, without a name.
            continue;
        }
        form.had_files = true;
        let relative = match upload_names.accept(&file_name) {
            Ok(relative) => relative,
            Err(error) => return Err((form, PageError::from(error).message)),
        };
        let saved = save_file(state, upload, field, &relative, limit, &mut received).await;
        match saved {
            Ok(()) => {
                if let Some(variable) = file_variable {
                    form.file_variables.push((variable, file_name));
                }
            }
            Err(message) => return Err((form, message)),
        }
    }
    Ok(form)
}

async fn save_file(
    state: &AppState,
    upload: &mut Option<StagedUpload>,
    mut field: axum::extract::multipart::Field<'_>,
    relative: &Path,
    limit: u64,
    received: &mut u64,
) -> Result<(), String> {
    if upload.is_none() {
        *upload = Some(
            state
                .coordinator
                .stage_upload()
                .await
                .map_err(|error| PageError::from(error).message)?,
        );
    }
    let folder = upload
        .as_ref()
        .map(|upload| upload.path().to_path_buf())
        .ok_or_else(|| "the upload folder could not be made".to_string())?;
    let destination = folder.join(relative);
    if let Some(parent) = destination.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|error| write_failure(&error))?;
    }
    let mut file = tokio::fs::File::create(&destination)
        .await
        .map_err(|error| write_failure(&error))?;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                return Err(if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    format!(
                        "The files are larger than the {} upload limit (max_upload_bytes in the config).",
                        views::human_size(limit)
                    )
                } else {
                    format!("the upload could not be read: {}", error.body_text())
                });
            }
        };
        *received += chunk.len() as u64;
        if *received > limit {
            return Err(format!(
                "The files are larger than the {} upload limit (max_upload_bytes in the config).",
                views::human_size(limit)
            ));
        }
        file.write_all(&chunk)
            .await
            .map_err(|error| write_failure(&error))?;
    }
    file.flush().await.map_err(|error| write_failure(&error))
}

fn write_failure(error: &std::io::Error) -> String {
    tracing::warn!(error = %error, "could not save an uploaded file");
    format!("The file could not be saved ({error}): check the free disk space of the data folder.")
}

async fn discard_upload(upload: &StagedUpload) {
    match tokio::fs::remove_dir_all(upload.path()).await {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(error = %error, "could not remove a rejected upload"),
    }
}

/// The new-task form: the type choice and, once a type is chosen, its variables.
struct NewTaskForm {
    types: Vec<TypeOption>,
    selected: Option<TypeFields>,
    customs: Vec<CustomVariable>,
    priority: String,
    error: Option<String>,
    /// Whether it is a page of its own (no Close button) rather than a panel.
    standalone: bool,
    reattach_files: bool,
}

struct TypeOption {
    name: String,
    selected: bool,
}

/// The variables of the chosen type, as form fields.
struct TypeFields {
    name: String,
    description: String,
    tags: String,
    timeout: String,
    variables: Vec<VariableField>,
}

/// One `env.NAME` field.
struct VariableField {
    name: String,
    value: String,
    description: String,
    placeholder: String,
    /// `default`, `required` or `optional`.
    kind: &'static str,
    /// Whether the type hints that the value is an uploaded file's name.
    is_file: bool,
    invalid: bool,
}

/// A custom variable row.
#[derive(Clone, Debug, Default)]
struct CustomVariable {
    name: String,
    value: String,
}

impl NewTaskForm {
    fn blank(catalog: &Catalog, chosen: Option<&str>, standalone: bool) -> NewTaskForm {
        let chosen = chosen.map(str::trim).filter(|name| !name.is_empty());
        let mut form = NewTaskForm {
            types: type_options(catalog, chosen),
            selected: chosen.and_then(|name| type_fields(catalog, name, &BTreeMap::new(), &[])),
            customs: vec![CustomVariable::default()],
            priority: "0".into(),
            error: None,
            standalone,
            reattach_files: false,
        };
        if chosen.is_some() && form.selected.is_none() {
            form.error = chosen.map(|name| {
                format!("There is no usable task type {name:?}: choose one from the list.")
            });
        }
        form
    }

    fn refilled(
        catalog: &Catalog,
        submitted: &SubmittedForm,
        message: String,
        standalone: bool,
    ) -> NewTaskForm {
        let chosen = Some(submitted.task_type.trim()).filter(|name| !name.is_empty());
        let typed: BTreeMap<String, String> = submitted.environment.iter().cloned().collect();
        let missing: Vec<String> = chosen
            .and_then(|name| catalog.get(name))
            .map(|loaded| {
                loaded
                    .spec
                    .environment
                    .required
                    .iter()
                    .filter(|variable| {
                        typed.get(&variable.name).is_none_or(String::is_empty)
                            && !submitted
                                .file_variables
                                .iter()
                                .any(|(name, _)| *name == variable.name)
                    })
                    .map(|variable| variable.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut customs: Vec<CustomVariable> = submitted
            .custom_names
            .iter()
            .enumerate()
            .map(|(index, name)| CustomVariable {
                name: name.clone(),
                value: submitted
                    .custom_values
                    .get(index)
                    .cloned()
                    .unwrap_or_default(),
            })
            .filter(|custom| !custom.name.is_empty() || !custom.value.is_empty())
            .collect();
        let selected = chosen.and_then(|name| type_fields(catalog, name, &typed, &missing));
        // Variables typed for a type that is gone stay visible as custom rows.
        if selected.is_none() {
            for (name, value) in &submitted.environment {
                customs.push(CustomVariable {
                    name: name.clone(),
                    value: value.clone(),
                });
            }
        }
        if customs.is_empty() {
            customs.push(CustomVariable::default());
        }
        NewTaskForm {
            types: type_options(catalog, chosen),
            selected,
            customs,
            priority: submitted.priority.clone(),
            error: Some(message),
            standalone,
            reattach_files: submitted.had_files,
        }
    }
}

fn type_options(catalog: &Catalog, chosen: Option<&str>) -> Vec<TypeOption> {
    catalog
        .listing()
        .into_iter()
        .filter(|task_type| task_type.error.is_none())
        .map(|task_type| TypeOption {
            selected: chosen == Some(task_type.name.as_str()),
            name: task_type.name,
        })
        .collect()
}

fn type_fields(
    catalog: &Catalog,
    name: &str,
    typed: &BTreeMap<String, String>,
    missing: &[String],
) -> Option<TypeFields> {
    let loaded = catalog.get(name)?;
    let spec = &loaded.spec;
    let value_of = |variable: &str, fallback: &str| -> String {
        typed
            .get(variable)
            .cloned()
            .unwrap_or_else(|| fallback.to_string())
    };
    let mut variables = Vec::new();
    for variable in &spec.environment.required {
        let is_file = variable.kind.eq_ignore_ascii_case("file");
        variables.push(VariableField {
            name: variable.name.clone(),
            value: value_of(&variable.name, ""),
            description: variable.description.clone(),
            placeholder: if is_file {
                "or the name of a file already there".into()
            } else if variable.kind.is_empty() {
                "required".into()
            } else {
                variable.kind.clone()
            },
            kind: "required",
            is_file,
            invalid: missing.contains(&variable.name),
        });
    }
    for variable in &spec.environment.default {
        variables.push(VariableField {
            name: variable.name.clone(),
            value: value_of(&variable.name, &variable.value),
            description: variable.description.clone(),
            placeholder: variable.value.clone(),
            kind: "default",
            is_file: false,
            invalid: false,
        });
    }
    for variable in &spec.environment.optional {
        variables.push(VariableField {
            name: variable.name.clone(),
            value: value_of(&variable.name, ""),
            description: variable.description.clone(),
            placeholder: if variable.value.is_empty() {
                "optional".into()
            } else {
                variable.value.clone()
            },
            kind: "optional",
            is_file: false,
            invalid: false,
        });
    }
    Some(TypeFields {
        name: spec.name.clone(),
        description: spec.description.clone(),
        tags: views::join_tags(&spec.tags),
        timeout: views::short_duration(spec.timeout),
        variables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn submitted_form_collects_variables_customs_and_priority() {
        let form = SubmittedForm::from_pairs(pairs(&[
            ("type", "echo_task"),
            ("env.NAME", "you"),
            ("env.EMPTY", ""),
            ("customEnvName", "EXTRA"),
            ("customEnvValue", "1"),
            ("customEnvName", ""),
            ("customEnvValue", ""),
            ("priority", "5"),
        ]));
        let new_task = form.to_new_task(&Catalog::default()).unwrap();
        assert_eq!(new_task.task_type, "echo_task");
        assert_eq!(new_task.priority, 5);
        assert_eq!(
            new_task.environment,
            BTreeMap::from([
                ("EXTRA".to_string(), "1".to_string()),
                ("NAME".to_string(), "you".to_string())
            ])
        );
    }

    #[test]
    fn submitted_form_mistakes_are_explained() {
        let no_type = SubmittedForm::from_pairs(pairs(&[("env.NAME", "x")]));
        assert!(
            no_type
                .to_new_task(&Catalog::default())
                .unwrap_err()
                .contains("Choose a task type")
        );
        let bad_priority = SubmittedForm::from_pairs(pairs(&[("type", "t"), ("priority", "high")]));
        assert!(
            bad_priority
                .to_new_task(&Catalog::default())
                .unwrap_err()
                .contains("\"high\"")
        );
        let nameless = SubmittedForm::from_pairs(pairs(&[
            ("type", "t"),
            ("customEnvName", " "),
            ("customEnvValue", "orphan"),
        ]));
        assert!(
            nameless
                .to_new_task(&Catalog::default())
                .unwrap_err()
                .contains("no variable name")
        );
    }
}
