# dormwatt student pages — English.
# One file per language; every key here must be in every other file
# (crates/web/tests/catalog.rs checks it).

lang-name = English
app-name = Dorm electricity
demo-banner = Demo mode: simulated students, meters and payments; no real money
home = Home
back-home = Back to home
tab-home = Home
tab-buy = Buy
tab-records = Records
tab-me = Me
unknown = Unknown
not-read = not read
remaining = Remaining
meter-no = No.
meter-number = Meter number
meter-number-placeholder = 12 digits
area-label = Area (school)
link-bill = Bill
link-records = Records
buy-electricity = Buy electricity
meter-offline = meter offline
read-at = Read at { $at }
not-read-yet = Not read yet
wait-minutes = { $n ->
    [one] { $n } minute
   *[other] { $n } minutes
}
wait-hours = { $n ->
    [one] { $n } hour
   *[other] { $n } hours
}
too-many-attempts = Too many attempts; try again in { $wait }.
wait-seconds = { $n ->
    [one] { $n } second
   *[other] { $n } seconds
}
default-label = default
kwh-value = { $kwh } kWh

## Errors
error-not-found = Page not found
error-snapshot = Please open this page inside WeChat to do this
error-internal = Something went wrong; please try again

## Overview
overview-title = Overview
overview-bound = Meter bound.
overview-default-password = This meter still has the default password 000000: anyone could bind it. Please change it.
overview-change-now = Change it now
overview-this-month = This month
overview-some-days-not-read = some days not read
overview-days-left-pre = At the recent rate this lasts about
overview-days-unit = { $n ->
    [one] day
   *[other] days
}
overview-rate = 7-day average { $rate } kWh/day
overview-power = Power
overview-chart-title = Daily usage, last 30 days
overview-notices = Latest notices
overview-no-notices = No notices
relay-on = On
relay-off = Off
relay-reason-balance = Out of energy; restores after a purchase
relay-reason-malicious = Forbidden high-power appliance detected
relay-reason-malicious-restores = Forbidden high-power appliance detected; restores by itself in about { $min } min
relay-reason-over-power = Over the power limit
relay-reason-staff = Switched off by staff; contact the service hall
relay-reason-lockout = Scheduled power-off hours
relay-reason-unknown = Reason unknown

## Chart
chart-label = Daily usage, last 30 days
chart-legend-read = Daily usage (kWh)
chart-legend-missing = Not read (not zero use)

## Buying
buy-title = Buy electricity
buy-my-meters = My meters
no-meter-yet = No meter bound yet.
bind-a-meter = Bind a meter
buy-enter-meter = Enter a meter
buy-enter-meter-note = Buy for a meter you have not bound (a friend's, say).
next = Next
buy-throttled = Too many meter look-ups; try again later, or bind the meter first.
buy-no-such-meter = No such meter in this area; check the area and the meter number.
order-title = Order
room = Room
remaining-energy = Remaining
unit-price = Unit price
yuan-per-kwh = yuan/kWh
order-amount = Amount
order-other = Other
order-other-label = Other amount (whole kWh)
order-other-placeholder = whole numbers only
order-at-most = At most { $max } kWh
buy = Buy
order-not-whole = Enter a whole number of kWh (such as 30), no decimals.
order-too-small = Buy at least 1 kWh.
order-too-large = At most { $max } kWh per order.
order-hoarding = The meter is near its limit; you can buy at most { $room } kWh now.
order-too-many-unpaid = You already have { $max } unpaid orders; pay or cancel one first.
order-meter-unpaid-limit = This meter already has { $max } unpaid orders; pay or cancel one first.
order-no = Order
energy = Energy
amount = Amount
pay-title = Payment
pay-now = Pay now
cancel-order = Cancel order
view-order = View order
pay-opening = Opening WeChat Pay…
pay-unavailable = Online payment is unavailable; try later or buy at the service hall.
pay-not-payable = This order can no longer be paid.
pay-expired = This order has expired; please place a new one.
pay-provider-failed = WeChat Pay did not answer; please try again.
order-detail-title = Order
pay-success = Payment received
pay-sending-note = The system is sending the energy to the meter; you will be told when it arrives.
order-status = Status
remaining-in-meter = Remaining in meter
order-done = The energy has reached the meter.
pay = Pay
order-state-unpaid = Unpaid
order-state-charging = Charging
order-state-delayed = Delayed
order-state-completed = Completed
order-state-closed = Closed
order-state-refunding = Refunding
order-state-refunded = Refunded

## Records
records-title = Purchase records
records-pay = Pay
records-cancel = Cancel
records-none = No purchases yet
records-legend = Unpaid: not paid yet, removed after 2 hours. Charging: paid, waiting for the system to send the energy. Completed: the energy is in the meter.

## Bill
bill-title = Bill
bill-meter = Meter
bill-month = Month
bill-show = Show
bill-heading = { $month } daily usage
bill-date = Date
bill-usage = Usage (kWh)
bill-today = today, in progress
bill-total = Total
bill-missing-note = Red rows are days whose reading could not be collected (communication delays and the like); they do not mean no electricity was used.
bill-reference-note = These figures are for reference only and may differ from the actual figures; the actual consumption prevails.
bill-data-starts = This meter's data starts on { $date }; earlier days are not listed.

## Binding
bind-title = Bind a meter
bind-first = To use the service, bind your room's meter first: fill in the form below.
bind-snapshot = You are viewing a WeChat snapshot page: you can look, but not bind or pay. Open this page inside WeChat.
bind-how = How do I find my meter number?
bind-help = The meter number is printed on the nameplate on the front of your room's meter, after “表号” or “No.”: 12 digits (the red box below). The dorm office or the service hall can also tell you.
bind-nameplate-label = meter nameplate
bind-password = Verification password
bind-password-placeholder = 6 digits
bind-password-note = The verification password is 000000 by default; change it after binding.
bind-make-default = Make this my default meter
bind-submit = Bind meter
bind-roommates = Roommates can bind the same meter; its existing binders get a message when someone new binds it.
bind-not-12-digits = A meter number has 12 digits; please check it.
bind-wrong = Wrong meter number or verification password; please check and try again.
bind-too-many = You can bind at most { $max } meters; unbind one in “My meters” first.

## My info
me-title = My info
me-no-name = No name yet
logout = Log out
wechat-user = WeChat user
profile-title = Profile
profile-saved = Saved.
profile-name = Name
profile-phone = Mobile phone
save = Save
profile-phone-note = Your phone number is only for the logistics office to reach you (refunds, say); it is never shown to others.

profile-name-too-long = At most { $max } characters.
profile-phone-invalid = Enter an 11-digit mobile number.
messages-title = Messages
messages-none = No messages
meters-title = My meters
meters-default = Default
meters-default-password = Still on the default password 000000: change it.
meters-co-binders = Also bound to this meter. If you do not know them, change the password: everyone who does not prove the new one is unbound:
meters-make-default = Make default
change-password = Change password
meters-unbind-confirm = Unbind this meter?
meters-unbind = Unbind
meters-bind-another = Bind another meter
password-title = Change meter password
password-changed = Password changed.
password-current = Current password
password-new = New password (6 digits)
password-again = New password again
password-note = If roommates share the meter, tell them the new password; it cannot be 000000.
password-differ = The two new passwords differ.
password-not-6-digits = The new password must be 6 digits.
password-not-default = The new password cannot be 000000.
password-current-wrong = The current password is wrong.
password-raced = Someone changed it just now; please try again.

## Login
login-title = Login
login-wechat = WeChat login
login-wechat-note = Log in with your WeChat account; no registration needed.
login-confirm = Confirm login
login-not-configured = WeChat login is not configured on this site.
login-demo = Demo login
login-demo-note = For the demo only: no WeChat; pick or create a demo student.
login-demo-name = Name of a new demo student
login-demo-name-placeholder = e.g. Alex
login-demo-new = Create a demo student and log in
login-failed = WeChat login did not complete; please try again.
login-again = Log in again
order-submit-amount = Buy { $kwh } kWh · ¥{ $yuan }

## Balance warnings
buy-now = Buy now
balance-low = Less than { $low } kWh left; please buy soon.
balance-low-short = Running low; please buy soon.
balance-overdraft = Balance used up: the meter is running on its overdraft and switches off when that is used up. Buying now repays the overdraft first.
balance-empty = Balance used up and power is off. It comes back on after a purchase.
bind-demo-meters = Demo meters
bind-demo-meters-note = Demo mode: these meter numbers exist on the demo campus (pick their area above); each one's verification password is 000000.
records-cancelled = Order cancelled.
meters-done-default = Made your default meter.
meters-done-unbound = Meter unbound.
meters-done-bound = Meter bound (not as your default).
pay-deadline = Pay by { $time }; the order closes after that.
order-unpaid-note = Not paid yet (the payment may have been cancelled). Tap “Pay” below to pay again, or pay from your purchase records.
order-empty = Enter an amount (whole kWh).
order-not-a-number = The amount must be a number, such as 30.

## Inbox messages (kind + arguments, store::message): every message names
## the meter by $building, $room and $meter.
messages-new = New
messages-opened-note = Opening this page marks its messages read; those marked “New” arrived since your last visit.
msg-delivered-title = Purchase delivered
msg-delivered-body = The meter of { $building } room { $room } (No. { $meter }) received { $kwh } kWh (order { $order }).
msg-low-balance-title = Low balance
msg-low-balance-body = The meter of { $building } room { $room } (No. { $meter }) has { $remaining } kWh left; please buy more soon.
msg-binder-added-title = Someone bound your meter
msg-binder-added-body = Another WeChat user has just bound the meter of { $building } room { $room } (No. { $meter }). If it was not a roommate, change the meter's verification password now: everyone else bound to it who does not know the new one is then unbound.
msg-unbound-by-password-change-title = Meter password changed
msg-unbound-by-password-change-body = Another binder changed the verification password of the meter of { $building } room { $room } (No. { $meter }), and you were unbound. If it was a roommate, ask for the new password and bind again; otherwise bring your ID to the service hall to have the password reset.
balance-overdraft-amount = Balance used up: { $used } kWh overdrawn; power switches off when the overdraft limit is used up. A purchase repays the overdraft first: buying { $buy } kWh leaves { $left } kWh.
## In-page confirmation dialog (forms with data-confirm)
dialog-cancel = Cancel
dialog-ok = OK
## staff

staff-console = Dormitory electricity console
staff-logout = Log out
staff-back = Back to the console
staff-nav-home = Home
staff-nav-operators = Operators
staff-nav-audit = Audit log
staff-nav-password = Change password
staff-role-administrator = Administrator
staff-role-cashier = Cashier
staff-role-building-manager = Building manager
staff-role-auditor = Auditor
staff-error-not-found = This page or record does not exist.
staff-error-forbidden = Your role may not do this; the attempt was recorded in the audit log.
staff-error-expired = This page has expired; go back, reload and try again.
staff-error-internal = Something went wrong; try again shortly.
staff-scope-all = Scope: every area
staff-scope-areas = Areas: { $list }
staff-scope-buildings = Buildings: { $list }
staff-welcome = Hello, { $name }
staff-home-title = Home
staff-home-intro = Choose what to do from the menu on the left.
staff-login-title = Staff login
staff-login-name = Name
staff-login-password = Password
staff-login-submit = Log in
staff-login-wrong = Wrong name or password.
staff-login-disabled = This account is disabled; ask an administrator.
staff-login-throttled = Too many failed logins; try again in { $n ->
    [one] { $n } minute
   *[other] { $n } minutes
}.
staff-password-title = Change password
staff-password-old = Current password
staff-password-new = New password
staff-password-again = New password again
staff-password-submit = Change password
staff-password-done = Password changed; your sessions elsewhere were logged out.
staff-password-old-wrong = The current password is not right.
staff-password-mismatch = The two new passwords differ.
staff-password-too-short = The password is too short: at least 10 characters.
staff-password-too-long = The password is too long: at most 128 characters.
staff-password-common = The password is too common or too easy to guess; choose another.
staff-password-rule = At least 10 characters; not a common password, and not containing the name.
staff-operators-title = Operators
staff-operator-created = Operator { $name } created.
staff-operator-disabled = Operator { $name } disabled.
staff-operator-bad-role = Choose a role.
staff-operator-refused = Not created: { $why }
staff-operator-not-self = You cannot disable your own account.
staff-operator-disable = Disable
staff-operator-new = New operator
staff-operator-areas = Area codes (empty: every area)
staff-operator-areas-hint = separate several with commas
staff-operator-buildings = Buildings (building managers only)
staff-operator-buildings-hint = building names, separated by commas
staff-operator-create = Create
staff-col-name = Name
staff-col-role = Role
staff-col-scope = Scope
staff-col-state = State
staff-state-active = Active
staff-state-disabled = Disabled
staff-audit-title = Audit log
staff-audit-operator = Operator
staff-audit-action = Action
staff-audit-any = Any
staff-audit-from = From
staff-audit-to = To
staff-audit-search = Search
staff-audit-export = Export CSV
staff-audit-empty = No entries match.
staff-audit-truncated = Only the newest 200 are shown; the CSV export has them all.
staff-audit-col-seq = No.
staff-audit-col-at = Time
staff-audit-col-ip = From IP
staff-audit-col-subject = Subject
staff-audit-col-before = Before
staff-audit-col-after = After
staff-nav-notices = Notices
staff-notices-title = Notices
staff-notices-empty = No notices yet.
staff-notice-new = Publish a notice
staff-notice-new-title = Publish a notice
staff-notice-edit-title = Edit notice
staff-notice-edit = Edit
staff-notice-col-title = Title
staff-notice-col-target = For
staff-notice-col-by = Published / edited by
staff-notice-body = Text
staff-notice-from = Shown from
staff-notice-until = Shown until
staff-notice-until-open = Until further notice
staff-notice-schedule-hint = Campus time; an empty start shows it now, an empty end keeps it shown.
staff-notice-target-campus = The whole campus
staff-notice-target-area = One area
staff-notice-target-buildings = Chosen buildings
staff-notice-pin = Pin to the top
staff-notice-pinned = Pinned
staff-notice-push = Push to students
staff-notice-push-short = (push)
staff-notice-push-hint = The push flag is only stored: nothing is sent until WeChat push notifications are built.
staff-notice-save = Save
staff-notice-saved = Notice “{ $title }” saved.
staff-notice-state-scheduled = Scheduled
staff-notice-state-showing = Showing
staff-notice-state-ended = Ended
staff-notice-created-by = Published by { $name } at { $at }
staff-notice-updated-by = edited by { $name } at { $at }
staff-notice-title-missing = Enter a title.
staff-notice-title-too-long = The title is at most 60 characters.
staff-notice-body-missing = Enter the text.
staff-notice-body-too-long = The text is at most 2000 characters.
staff-notice-until-before-from = The end must be after the start.
staff-notice-bad-time = The time is not valid; use year-month-day hour:minute.
staff-notice-bad-target = Choose who the notice is for: the whole campus, one area, or existing buildings.
staff-notice-buildings-count = Choose between 1 and 200 buildings.
staff-notice-changed = Someone else has just edited this notice; open it again and redo your change.
staff-meter-password-title = Reset a meter's verification password
staff-meter-password-meter = Meter No.
staff-meter-password-place = Place
staff-meter-password-binders = Students bound
staff-meter-password-explain = Check the visitor's ID and room assignment first. The reset makes a new 6-digit verification password, shown only this once; every student bound to this meter is unbound and told in their inbox, and binds again with the new password.
staff-meter-password-confirm = Reset the password
staff-meter-password-done = The password is reset; { $unbound } students were unbound and told.
staff-meter-password-new = New verification password:
staff-meter-password-once = This password is shown only this once: hand it to the room's occupant. It is not stored in plain text.
staff-meter-password-changed = Someone has just reset or changed this meter's password; open this page again and check before going on.
msg-password-reset-by-staff-title = Meter password reset by the office
msg-password-reset-by-staff-body = The logistics office reset the verification password of the meter of { $building } room { $room } (No. { $meter }), and you were unbound. If you still live there, collect the new password at the service hall and bind again.
staff-dash-sales = Sales today
staff-dash-yuan = yuan
staff-dash-kwh = { $n } kWh
staff-dash-orders = { $n } orders
staff-dash-no-sales = No sales yet today.
staff-dash-channel-wechat = WeChat
staff-dash-channel-counter = Counter
staff-dash-undelivered = Paid, not yet delivered
staff-dash-oldest = the oldest has waited { $age }
staff-dash-age-minutes = { $n } min
staff-dash-age-hours = { $n } h
staff-dash-exceptions = Exceptions to resolve
staff-dash-offline = Meters offline
staff-dash-of-meters = of { $n } meters
staff-dash-read = Read success today
staff-dash-read-of = { $n } of { $total } meters read today
staff-nav-apikeys = API keys
staff-apikeys-title = API keys
staff-apikeys-intro = Integrations (a counter till, say) call the JSON API with "Authorization: Bearer <key>". Every call is recorded in the audit log under the key's name.
staff-apikeys-empty = No API keys yet.
staff-apikey-col-created = Created
staff-apikey-col-used = Last used
staff-apikey-never = Never
staff-apikey-state-revoked = Revoked
staff-apikey-revoke = Revoke
staff-apikey-new = New API key
staff-apikey-name-hint = e.g. canteen 1 till
staff-apikey-create = Create
staff-apikey-created = Key “{ $name }” created:
staff-apikey-once = The key is shown only this once: copy it into the caller's configuration now. Only its digest is stored; it cannot be shown again.
staff-apikey-refused = Not created: { $why }
staff-apikey-revoked = Key “{ $name }” revoked.
