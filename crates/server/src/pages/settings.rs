//! The Settings page: the desktop notification settings (saved into the config file through
//! the coordinator, live at once) and the desktop app's start at login, which the page only
//! shows; inside the window `app.js` reads and changes it through the app's own command.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use blanket_core::config::NotifyMode;
use blanket_core::wire::{NotifyChange, NotifySettings};

use super::views::{Chrome, Nav};
use super::{Hx, PageError, render, see_other};
use crate::AppState;

/// `GET /ui/settings`.
pub async fn settings_page(State(state): State<AppState>) -> Response {
    let page = SettingsPage {
        chrome: Chrome::new("Settings", Nav::Settings),
        form: SettingsForm::new(state.coordinator.notify_settings(), None, None),
    };
    render(StatusCode::OK, &page)
}

/// The fields of the settings form. `whenFocusedShown` tells an unticked box (false) from a
/// locked one the browser does not send.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsFields {
    mode: Option<String>,
    min_seconds: Option<String>,
    when_focused: Option<String>,
    when_focused_shown: Option<String>,
}

/// `POST /ui/settings`: saves the notification settings; an htmx request gets the form back
/// with a notice, a plain post a redirect to the page.
pub async fn settings_save(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    fields: Result<Form<SettingsFields>, FormRejection>,
) -> Response {
    let fields = fields.map(|Form(fields)| fields).unwrap_or_default();
    let outcome = match change_of(&fields) {
        Ok(change) => state
            .coordinator
            .change_notify(change)
            .await
            .map_err(PageError::from),
        Err(message) => Err(PageError::new(StatusCode::BAD_REQUEST, message)),
    };
    match (outcome, htmx) {
        (Ok(_), false) => see_other("/ui/settings"),
        (Ok(settings), true) => render(
            StatusCode::OK,
            &SettingsFormPartial {
                form: SettingsForm::new(settings, Some("Saved.".to_owned()), None),
            },
        ),
        (Err(error), true) => render(
            error.status,
            &SettingsFormPartial {
                form: SettingsForm::new(
                    state.coordinator.notify_settings(),
                    None,
                    Some(error.message),
                ),
            },
        ),
        (Err(error), false) => error.respond(false),
    }
}

fn change_of(fields: &SettingsFields) -> Result<NotifyChange, String> {
    let min_seconds = match fields.min_seconds.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            format!(
                "Minimum run time {text:?} is not a whole number of seconds: use e.g. 10, or 0 \
                 to hear about every task."
            )
        })?),
    };
    Ok(NotifyChange {
        mode: fields.mode.clone(),
        min_seconds,
        when_focused: fields
            .when_focused_shown
            .is_some()
            .then(|| fields.when_focused.is_some()),
    })
}

/// What the form shows.
struct SettingsForm {
    settings: NotifySettings,
    saved: Option<String>,
    error: Option<String>,
}

impl SettingsForm {
    fn new(settings: NotifySettings, saved: Option<String>, error: Option<String>) -> SettingsForm {
        SettingsForm {
            settings,
            saved,
            error,
        }
    }

    /// The modes in the order shown, with their labels.
    fn modes(&self) -> [(&'static str, &'static str, bool); 3] {
        [
            (NotifyMode::All, "Every task"),
            (NotifyMode::FailuresOnly, "Failures only"),
            (NotifyMode::None, "None"),
        ]
        .map(|(mode, label)| (mode.as_str(), label, mode == self.settings.mode))
    }

    /// What sets `key` above the config file, if something does.
    fn locked(&self, key: &str) -> Option<&str> {
        self.settings.locked.get(key).map(String::as_str)
    }
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    form: SettingsForm,
}

#[derive(Template)]
#[template(path = "settings_form.html")]
struct SettingsFormPartial {
    form: SettingsForm,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unticked_box_is_false_and_a_locked_one_is_left_alone() {
        let shown = SettingsFields {
            when_focused_shown: Some("1".into()),
            ..SettingsFields::default()
        };
        assert_eq!(change_of(&shown).unwrap().when_focused, Some(false));
        assert_eq!(
            change_of(&SettingsFields::default()).unwrap().when_focused,
            None
        );
    }

    #[test]
    fn a_threshold_that_is_not_a_number_says_what_to_type() {
        let fields = SettingsFields {
            min_seconds: Some("ten".into()),
            ..SettingsFields::default()
        };
        assert!(change_of(&fields).unwrap_err().contains("\"ten\""));
    }
}
