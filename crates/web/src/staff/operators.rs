//! Operators in the console: the list (administrators and auditors) and,
//! for administrators, creating and disabling operators.

use super::{
    Console, CurrentOperator, IdPost, StaffError, StaffForm, StaffResult, html_with_status,
    scope_text,
};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Query, State};
use domain::staff::{self, Action, Place, Role};
use serde::Deserialize;

/// One operator as the list shows it.
struct Row {
    id: i64,
    name: String,
    role: String,
    scope: String,
    disabled: bool,
}

/// The operators page.
#[derive(Template)]
#[template(path = "staff/operators.html")]
struct OperatorsPage {
    l: Lang,
    frame: super::Frame,
    rows: Vec<Row>,
    /// The create form and disable buttons (administrators only).
    manage: bool,
    roles: Vec<super::RoleOption>,
    error: Option<String>,
    notice: Option<String>,
}

/// Query of the operators page.
#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    created: Option<String>,
    disabled: Option<String>,
}

async fn render(
    state: &AppState,
    op: &CurrentOperator,
    error: Option<String>,
    notice: Option<String>,
) -> StaffResult {
    let l = op.l;
    let rows = store::operators::list(state.db())
        .await?
        .into_iter()
        .map(|o| Row {
            id: o.id,
            scope: scope_text(l, &o),
            role: super::role_text(l, o.role),
            disabled: o.disabled_at_ms.is_some(),
            name: o.name,
        })
        .collect();
    let failed = error.is_some();
    html_with_status(
        &OperatorsPage {
            l,
            frame: op.frame("staff-operators-title", "/staff/operators"),
            rows,
            manage: op.may(Action::ManageOperators, Place::Console),
            roles: super::role_options(l),
            notice,
            error,
        },
        failed,
    )
}

/// `GET /staff/operators`.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewOperators as u8 }>,
    Query(q): Query<NoticeQuery>,
) -> StaffResult {
    let l = op.l;
    let notice = q
        .created
        .map(|n| l.t1("staff-operator-created", "name", n))
        .or_else(|| {
            q.disabled
                .map(|n| l.t1("staff-operator-disabled", "name", n))
        });
    render(&state, &op, None, notice).await
}

/// The create form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
    role: String,
    password: String,
    /// Area codes, separated by commas or spaces (empty: every area).
    #[serde(default)]
    areas: String,
    /// Building names, separated by commas.
    #[serde(default)]
    buildings: String,
}

crate::pages::csrf_forms!(CreateForm);

fn split(s: &str, by: &[char]) -> Vec<String> {
    s.split(by)
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /staff/operators`: an administrator creates an operator.
pub async fn create(
    State(state): State<AppState>,
    f: StaffForm<CreateForm, { Action::ManageOperators as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let name = form.name.trim().to_owned();
    let Some(role) = Role::parse(&form.role) else {
        return render(&state, &op, Some(l.t("staff-operator-bad-role")), None).await;
    };
    if let Err(e) = staff::check_new_password(&form.password, &name) {
        return render(&state, &op, Some(l.t(super::login::weak_key(e))), None).await;
    }
    let phc = staff::hash_password(&form.password, rand::random())
        .map_err(|e| StaffError::Store(store::Error::Corrupt(e.to_string())))?;
    let new = store::operators::NewOperator {
        name: name.clone(),
        role,
        password_phc: phc,
        area_codes: split(&form.areas, &[',', ' ', '，', '、']),
        building_names: split(&form.buildings, &[',', '，', '、']),
    };
    let now = state.settings().staff.clock.now_ms();
    match store::operators::create(state.db(), &new, &op.actor(), now).await {
        Ok(_) => super::see_with("/staff/operators?created=", &name),
        // The store's reason (a taken name, an unknown area…), shown as is.
        Err(store::Error::Conflict(why)) => {
            render(
                &state,
                &op,
                Some(l.t1("staff-operator-refused", "why", why)),
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /staff/operators/{id}/disable`.
pub async fn disable(
    State(state): State<AppState>,
    IdPost { id, op }: IdPost<{ Action::ManageOperators as u8 }>,
) -> StaffResult {
    let Some(target) = store::operators::get(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    if target.id == op.operator.id {
        return render(&state, &op, Some(op.l.t("staff-operator-not-self")), None).await;
    }
    let now = state.settings().staff.clock.now_ms();
    match store::operators::disable(state.db(), &target.name, &op.actor(), now).await {
        Ok(_) | Err(store::Error::Conflict(_)) => {
            super::see_with("/staff/operators?disabled=", &target.name)
        }
        Err(e) => Err(e.into()),
    }
}
