//! The sandbox cashier: a small mobile page standing in for WeChat's own
//! payment sheet. Chinese first, because that is what students see in WeChat.

use axum::Form;
use axum::extract::{OriginalUri, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::http::query_param;
use super::{Sandbox, SandboxError};
use crate::bill::format_yuan;
use crate::model::TradeState;

/// Escapes text for HTML element and attribute content.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Only same-site paths may be returned to, so the cashier is no open redirect.
fn safe_return_url(url: Option<&str>) -> Option<&str> {
    url.filter(|u| {
        u.starts_with('/') && !u.starts_with("//") && !u.contains('\\') && !u.contains(['\r', '\n'])
    })
}

fn layout(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; background: #ededed; margin: 0; }}
main {{ max-width: 28rem; margin: 0 auto; padding: 1.5rem 1rem; }}
.card {{ background: #fff; border-radius: .75rem; padding: 1.5rem 1rem; text-align: center; }}
.badge {{ display: inline-block; background: #fa5151; color: #fff; font-size: .75rem; border-radius: .25rem; padding: .1rem .4rem; }}
.amount {{ font-size: 2.5rem; font-weight: 600; margin: 1rem 0; }}
.meta {{ color: #666; font-size: .875rem; overflow-wrap: anywhere; }}
button, .link {{ display: block; width: 100%; box-sizing: border-box; margin-top: 1rem; padding: .9rem; border: 0; border-radius: .5rem; font-size: 1.05rem; text-decoration: none; }}
.pay {{ background: #07c160; color: #fff; }}
.cancel {{ background: #f2f2f2; color: #333; }}
</style>
</head>
<body><main>{body}</main></body>
</html>"#,
        title = escape(title),
    ))
}

fn back_link(merchant_base: Option<&str>, return_url: Option<&str>) -> String {
    match safe_return_url(return_url) {
        Some(u) => format!(
            r#"<a class="link cancel" href="{}{}">返回商户 / Back to merchant</a>"#,
            escape(merchant_base.unwrap_or("").trim_end_matches('/')),
            escape(u)
        ),
        None => String::new(),
    }
}

fn message_page(sb: &Sandbox, title: &str, text: &str, return_url: Option<&str>) -> Response {
    layout(
        title,
        &format!(
            r#"<div class="card"><span class="badge">沙箱 SANDBOX</span><h1>{}</h1><p class="meta">{}</p>{}</div>"#,
            escape(title),
            escape(text),
            back_link(sb.config().merchant_base_url.as_deref(), return_url)
        ),
    )
    .into_response()
}

/// `GET /cashier?prepay_id=…&return_url=/path`.
pub(super) async fn page(State(sb): State<Sandbox>, OriginalUri(uri): OriginalUri) -> Response {
    let prepay_id = query_param(&uri, "prepay_id").unwrap_or_default();
    let return_url = query_param(&uri, "return_url");
    let Some(t) = sb
        .out_trade_no_for_prepay(&prepay_id)
        .and_then(|otn| sb.order(&otn))
    else {
        return message_page(&sb, "订单不存在", "Order not found.", return_url.as_deref());
    };
    if t.trade_state != TradeState::Notpay {
        let text = match t.trade_state {
            TradeState::Success | TradeState::Refund => "该订单已支付 / Already paid.",
            TradeState::Closed => "订单已关闭 / Order closed.",
            _ => "订单状态异常 / Order cannot be paid.",
        };
        return message_page(&sb, "无法支付", text, return_url.as_deref());
    }
    let description = sb
        .state()
        .orders
        .get(&t.out_trade_no)
        .map(|o| o.request.description.clone())
        .unwrap_or_default();
    let hidden = format!(
        r#"<input type="hidden" name="prepay_id" value="{}"><input type="hidden" name="return_url" value="{}">"#,
        escape(&prepay_id),
        escape(safe_return_url(return_url.as_deref()).unwrap_or(""))
    );
    // Relative actions resolve next to this page, wherever the router is mounted.
    let body = format!(
        r#"<div class="card">
<span class="badge">沙箱 SANDBOX · 不会真实扣款</span>
<p class="meta">{description}</p>
<div class="amount">¥{amount}</div>
<p class="meta">商户订单号 {otn}</p>
<form method="post" action="cashier/confirm">{hidden}<button class="pay" type="submit">确认支付 / Pay</button></form>
<form method="post" action="cashier/cancel">{hidden}<button class="cancel" type="submit">取消 / Cancel</button></form>
</div>"#,
        description = escape(&description),
        amount = format_yuan(t.amount.total.unwrap_or(0)),
        otn = escape(&t.out_trade_no),
    );
    layout("微信支付（沙箱）", &body).into_response()
}

/// The cashier form.
#[derive(Debug, Deserialize)]
pub(super) struct CashierForm {
    prepay_id: String,
    #[serde(default)]
    return_url: String,
}

/// `POST /cashier/confirm`: pays and notifies per plan.
pub(super) async fn confirm(State(sb): State<Sandbox>, Form(form): Form<CashierForm>) -> Response {
    let return_url = Some(form.return_url.as_str()).filter(|u| !u.is_empty());
    let Some(otn) = sb.out_trade_no_for_prepay(&form.prepay_id) else {
        return message_page(&sb, "订单不存在", "Order not found.", return_url);
    };
    match sb.pay(&otn) {
        Ok(t) => message_page(
            &sb,
            "支付成功",
            &format!(
                "已支付 ¥{}。电费到账以商户页面为准。/ Paid; the merchant page shows the credit.",
                format_yuan(t.amount.total.unwrap_or(0))
            ),
            return_url,
        ),
        Err(SandboxError::Expired | SandboxError::PrepayExpired) => {
            message_page(&sb, "支付失败", "订单已过期 / Order expired.", return_url)
        }
        Err(SandboxError::NotPayable(TradeState::Closed)) => {
            message_page(&sb, "支付失败", "订单已关闭 / Order closed.", return_url)
        }
        Err(e) => message_page(&sb, "支付失败", &e.to_string(), return_url),
    }
}

/// `POST /cashier/cancel`: like closing WeChat's sheet — the order stays NOTPAY.
pub(super) async fn cancel(State(sb): State<Sandbox>, Form(form): Form<CashierForm>) -> Response {
    let return_url = Some(form.return_url.as_str()).filter(|u| !u.is_empty());
    message_page(
        &sb,
        "已取消支付",
        "您已取消支付 / Payment cancelled.",
        return_url,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_return_url(Some("/orders/1")), Some("/orders/1"));
        assert_eq!(safe_return_url(Some("//evil.example")), None);
        assert_eq!(safe_return_url(Some("https://evil.example")), None);
        assert_eq!(safe_return_url(Some("/\\evil")), None);
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
