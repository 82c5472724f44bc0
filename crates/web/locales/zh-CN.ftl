# dormwatt student pages — 简体中文 (the default language).
# One file per language; every key here must be in every other file
# (crates/web/tests/catalog.rs checks it).

lang-name = 中文
app-name = 公寓购电
demo-banner = 演示模式：模拟的学生、电表和支付，不涉及真实资金
home = 首页
back-home = 返回首页
tab-home = 首页
tab-buy = 购电
tab-records = 记录
tab-me = 我的
unknown = 未知
not-read = 未抄到
remaining = 表内剩余
meter-no = 表号
meter-number = 电表编号
meter-number-placeholder = 12 位数字
area-label = 所属区域
link-bill = 用电查询
link-records = 购电记录
buy-electricity = 购电
meter-offline = 电表暂时离线
read-at = 抄表时间 { $at }
not-read-yet = 尚未抄到
wait-minutes = { $n } 分钟
wait-hours = { $n } 小时
too-many-attempts = 尝试次数过多，请 { $wait }后再试。
wait-seconds = { $n } 秒
default-label = 默认
kwh-value = { $kwh } kWh

## Errors
error-not-found = 页面不存在
error-snapshot = 请在微信中打开本页面后再操作
error-internal = 系统繁忙，请稍后再试

## Overview
overview-title = 综合首页
overview-bound = 绑定成功。
overview-default-password = 这块电表仍在使用默认验证密码 000000，任何人都可能绑定它。请及时修改。
overview-change-now = 立即修改
overview-this-month = 本月用电
overview-some-days-not-read = 含未抄到的日子
overview-days-left-pre = 按近期用量约可用
overview-days-unit = 天
overview-rate = 近 7 天日均 { $rate } kWh/天
overview-power = 用电状态
overview-chart-title = 最近30天日用电量走势
overview-notices = 最新通知
overview-no-notices = 暂无通知
relay-on = 正常供电
relay-off = 已断电
relay-reason-balance = 电量用完，购电后自动恢复
relay-reason-malicious = 检测到违规大功率电器（恶性负载）
relay-reason-malicious-restores = 检测到违规大功率电器（恶性负载），约 { $min } 分钟后自动恢复
relay-reason-over-power = 超过功率限制
relay-reason-staff = 管理员已断电，请联系后勤服务大厅
relay-reason-lockout = 当前时段停止供电
relay-reason-unknown = 原因未知

## Chart
chart-label = 最近30天日用电量
chart-legend-read = 日用电量 (kWh)
chart-legend-missing = 未抄到数据（不代表未用电）

## Buying
buy-title = 购电缴费
buy-my-meters = 已绑定电表
no-meter-yet = 还没有绑定电表。
bind-a-meter = 绑定电表
buy-enter-meter = 手工输入
buy-enter-meter-note = 为未绑定的电表（例如同学的）购电。
next = 下一步
buy-throttled = 查询电表过于频繁，请稍后再试，或先绑定该电表。
buy-no-such-meter = 未找到该电表，请检查所属区域和电表编号。
order-title = 购电订单
room = 房间
remaining-energy = 剩余电量
unit-price = 电价
yuan-per-kwh = 元/kWh
order-amount = 购电电量
order-other = 其它
order-other-label = 其它电量（整数 kWh）
order-other-placeholder = 只能输入整数
order-at-most = 单笔最多 { $max } kWh
buy = 购电
order-not-whole = 请输入整数电量（如 30），不能有小数。
order-too-small = 至少购买 1 kWh。
order-too-large = 单笔最多购买 { $max } kWh。
order-hoarding = 电表内电量已接近上限，本次最多可购买 { $room } kWh。
order-too-many-unpaid = 您已有 { $max } 笔未支付的订单，请先支付或取消。
order-meter-unpaid-limit = 该电表已有 { $max } 笔未支付的订单，请先支付或取消。
order-no = 订单号
energy = 电量
amount = 金额
pay-title = 支付
pay-now = 确认支付
cancel-order = 取消订单
view-order = 查看订单
pay-opening = 正在打开微信支付……
pay-unavailable = 在线支付暂不可用，请稍后再试或到后勤服务大厅购电。
pay-not-payable = 该订单已不能支付。
pay-expired = 订单已过期，请重新下单。
pay-provider-failed = 微信支付暂时没有响应，请重试。
order-detail-title = 订单详情
pay-success = 支付成功
pay-sending-note = 系统正在把电量下发到电表，完成后会通知您。
order-status = 订单状态
remaining-in-meter = 表内剩余
order-done = 电量已成功下发至电表。
pay = 去支付
order-state-unpaid = 未支付
order-state-charging = 加电中
order-state-delayed = 延迟加电
order-state-completed = 已完成
order-state-closed = 已关闭
order-state-refunding = 退款中
order-state-refunded = 已退款

## Records
records-title = 购电记录
records-pay = 支付
records-cancel = 取消
records-none = 暂无购电记录
records-legend = 未支付：用户未支付，超过 2 小时自动移除；加电中：已支付，等待系统下发电量；已完成：电量已下发至电表。

## Bill
bill-title = 账单查询
bill-meter = 电表
bill-month = 月份
bill-show = 查询
bill-heading = { $month } 日用电明细
bill-date = 日期
bill-usage = 用电量 (kWh)
bill-today = 今日统计中
bill-total = 合计
bill-missing-note = 因通讯延迟等问题，红色字体显示的为当日未抄到用电数据，并不代表当日无用电。
bill-reference-note = 此处显示数据仅做参考，可能与实际数据存在偏差，请以实际发生数据为准。
bill-data-starts = 本电表的用电数据从 { $date } 开始，之前的日期不列出。

## Binding
bind-title = 绑定电表
bind-first = 要正常使用，需要绑定电表。请填写下面的信息完成绑定。
bind-snapshot = 当前为微信快照页身份，只能浏览，不能绑定电表或购电。请在微信中打开本页面。
bind-how = 如何获取？
bind-help = 电表编号印在电表正面的铭牌上，标有“表号”或“No.”，共 12 位数字（见下图红框）。也可以向宿管或后勤服务大厅查询。
bind-nameplate-label = 电表铭牌
bind-password = 验证密码
bind-password-placeholder = 6 位数字
bind-password-note = 验证密码默认为 6 个 0（000000），绑定后请及时修改。
bind-make-default = 设为默认电表
bind-submit = 绑定电表
bind-roommates = 同一宿舍的同学可以绑定同一块电表；有人新绑定时，已绑定的同学会收到消息。
bind-not-12-digits = 电表编号为 12 位数字，请检查后重新输入。
bind-wrong = 电表编号或验证密码错误，请检查后重试。
bind-too-many = 最多可绑定 { $max } 块电表，请先在“我的电表”中解除不用的电表。

## My info
me-title = 我的信息
me-no-name = 未填写姓名
logout = 退出登录
wechat-user = 微信用户
profile-title = 个人资料
profile-saved = 已保存。
profile-name = 姓名
profile-phone = 手机号码
profile-phone-note = 手机号码仅用于后勤联系您（例如退款），不会公开。
save = 保存
profile-name-too-long = 姓名最多 { $max } 个字。
profile-phone-invalid = 请输入 11 位手机号码。
messages-title = 消息
messages-none = 暂无消息
meters-title = 我的电表
meters-default = 默认电表
meters-default-password = 仍在使用默认密码 000000，请修改。
meters-co-binders = 以下用户也绑定了此电表。如不认识，请修改验证密码，未验证新密码的绑定者将被解除绑定：
meters-make-default = 设为默认
change-password = 修改密码
meters-unbind-confirm = 确定解除绑定？
meters-unbind = 解除绑定
meters-bind-another = 绑定新电表
password-title = 修改电表密码
password-changed = 密码已修改。
password-current = 当前密码
password-new = 新密码（6 位数字）
password-again = 再次输入新密码
password-note = 室友共用电表时，请把新密码告诉室友；新密码不能是 000000。
password-differ = 两次输入的新密码不一致。
password-not-6-digits = 新密码必须是 6 位数字。
password-not-default = 新密码不能是 000000。
password-current-wrong = 当前密码错误。
password-raced = 密码刚被他人修改，请重试。

## Login
login-title = 登录
login-wechat = 微信登录
login-wechat-note = 使用微信帐号直接登录，无需注册。
login-confirm = 确认登录
login-not-configured = 本站尚未配置微信登录。
login-demo = 演示登录
login-demo-note = 仅用于演示：不经过微信，选择或创建一个演示学生。
login-demo-name = 新演示学生的名字
login-demo-name-placeholder = 例如：张三
login-demo-new = 创建演示学生并登录
login-failed = 微信登录未完成，请重试。
login-again = 重新登录
order-submit-amount = 购电 { $kwh } kWh · ¥{ $yuan }

## Balance warnings
buy-now = 立即购电
balance-low = 剩余电量不足 { $low } kWh，请及时购电。
balance-low-short = 剩余电量不足，请及时购电。
balance-overdraft = 余额已用完，电表正在透支用电，透支额度用完将断电。现在购电会先抵扣已透支的电量。
balance-empty = 余额已用完，已断电。购电后自动恢复供电。
bind-demo-meters = 演示电表
bind-demo-meters-note = 演示模式：以下是演示校区中真实存在的电表编号（选择对应的所属区域），验证密码均为 000000。
records-cancelled = 订单已取消。
meters-done-default = 已设为默认电表。
meters-done-unbound = 已解除绑定。
meters-done-bound = 绑定成功，该电表未设为默认电表。
pay-deadline = 请在 { $time } 前支付，超时订单将自动关闭。
order-unpaid-note = 尚未支付（例如支付被取消）。点击下方“去支付”即可重新支付，也可以在购电记录中支付。
order-empty = 请输入购电电量（整数 kWh）。
order-not-a-number = 电量只能填写数字，如 30。

## Inbox messages (kind + arguments, store::message): every message names
## the meter by $building, $room and $meter.
messages-new = 新
messages-opened-note = 打开本页即视为已读；标“新”的是本次新收到的消息。
msg-delivered-title = 购电已到账
msg-delivered-body = { $building } { $room } 的电表（表号 { $meter }）已收到 { $kwh } kWh（订单 { $order }）。
msg-low-balance-title = 电量不足提醒
msg-low-balance-body = { $building } { $room } 的电表（表号 { $meter }）剩余 { $remaining } kWh，请及时购电。
msg-binder-added-title = 电表有新用户绑定
msg-binder-added-body = 另一位微信用户刚刚绑定了 { $building } { $room } 的电表（表号 { $meter }）。如果不是您的室友，请尽快修改电表验证密码：修改后，未验证新密码的其他绑定者会被解除绑定。
msg-unbound-by-password-change-title = 电表验证密码已被修改
msg-unbound-by-password-change-body = 另一位绑定者修改了 { $building } { $room } 电表（表号 { $meter }）的验证密码，您已被解除绑定。如果是室友，请向其索取新密码后重新绑定；如果不认识对方，请携带证件到后勤服务大厅重置电表密码。
balance-overdraft-amount = 余额已用完，已透支 { $used } kWh，透支额度用完将断电。购电会先抵扣透支的电量：例如购买 { $buy } kWh，到账后剩余 { $left } kWh。
## In-page confirmation dialog (forms with data-confirm)
dialog-cancel = 取消
dialog-ok = 确定
