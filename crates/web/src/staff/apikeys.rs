//! Named API keys in the console (issue 13 item 1): administrators create
//! them (name, role; the secret is shown once, `Cache-Control: no-store`)
//! and revoke them; administrators and auditors see the list with when
//! each was created and last used. The JSON API's bearer check uses them
//! (`payments::api`).

use super::{
    Console, CurrentOperator, IdPost, StaffForm, StaffResult, fmt_seconds, html_with_status,
};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use domain::staff::{Action, Place, Role};
use serde::Deserialize;

/// One key as the list shows it.
struct Row {
    id: i64,
    name: String,
    role: String,
    created: String,
    last_used: String,
    revoked: bool,
}

/// `GET /staff/apikeys`.
#[derive(Template)]
#[template(path = "staff/apikeys.html")]
struct KeysPage {
    l: Lang,
    frame: super::Frame,
    rows: Vec<Row>,
    manage: bool,
    roles: Vec<super::RoleOption>,
    /// A key just created: (name, secret), shown this once.
    created: Option<(String, String)>,
    error: Option<String>,
    notice: Option<String>,
}

async fn render(
    state: &AppState,
    op: &CurrentOperator,
    created: Option<(String, String)>,
    error: Option<String>,
    notice: Option<String>,
) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(state);
    let rows = store::api_keys::list(state.db())
        .await?
        .into_iter()
        .map(|k| Row {
            id: k.id,
            role: super::role_text(l, k.role),
            created: format!(
                "{} · {}",
                fmt_seconds(k.created_at_ms, tz),
                k.created_by.unwrap_or_default()
            ),
            last_used: k
                .last_used_at_ms
                .map_or_else(|| l.t("staff-apikey-never"), |t| fmt_seconds(t, tz)),
            revoked: k.revoked_at_ms.is_some(),
            name: k.name,
        })
        .collect();
    let failed = error.is_some();
    let fresh = created.is_some();
    let mut r = html_with_status(
        &KeysPage {
            l,
            frame: op.frame("staff-apikeys-title", "/staff/apikeys"),
            rows,
            manage: op.may(Action::ManageApiKeys, Place::Console),
            roles: super::role_options(l),
            created,
            error,
            notice,
        },
        failed,
    )?;
    if fresh {
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(r)
}

/// Query of the list.
#[derive(Debug, Deserialize)]
pub struct KeysQuery {
    revoked: Option<String>,
}

/// `GET /staff/apikeys`: administrators and auditors.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewOperators as u8 }>,
    Query(q): Query<KeysQuery>,
) -> StaffResult {
    let notice = q
        .revoked
        .map(|n| op.l.t1("staff-apikey-revoked", "name", n));
    render(&state, &op, None, None, notice).await
}

/// The create form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
    role: String,
}

crate::pages::csrf_forms!(CreateForm);

/// `POST /staff/apikeys`: creates a key and shows its secret once.
pub async fn create(
    State(state): State<AppState>,
    f: StaffForm<CreateForm, { Action::ManageApiKeys as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let Some(role) = Role::parse(&form.role) else {
        return render(
            &state,
            &op,
            None,
            Some(l.t("staff-operator-bad-role")),
            None,
        )
        .await;
    };
    let now = state.settings().staff.clock.now_ms();
    match store::api_keys::create(state.db(), &form.name, role, &op.actor(), now).await {
        Ok((key, secret)) => render(&state, &op, Some((key.name, secret)), None, None).await,
        Err(store::Error::Conflict(why)) => {
            render(
                &state,
                &op,
                None,
                Some(l.t1("staff-apikey-refused", "why", why)),
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /staff/apikeys/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    IdPost { id, op }: IdPost<{ Action::ManageApiKeys as u8 }>,
) -> StaffResult {
    let now = state.settings().staff.clock.now_ms();
    store::api_keys::revoke(state.db(), id, &op.actor(), now).await?;
    let name = store::api_keys::list(state.db())
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .map(|k| k.name)
        .unwrap_or_default();
    super::see_with("/staff/apikeys?revoked=", &name)
}
