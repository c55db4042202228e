// Chinese by default, English on request; the choice is kept in localStorage (shared with the map).
import { ref } from "vue";

const KEY = "sitewatch.lang";
export const lang = ref(localStorage.getItem(KEY) === "en" ? "en" : "zh");

export function setLang(value) {
  lang.value = value === "en" ? "en" : "zh";
  localStorage.setItem(KEY, lang.value);
  document.documentElement.lang = lang.value === "en" ? "en" : "zh-CN";
}

const zh = {
  app: "SiteWatch 监理监管", signIn: "登录", signOut: "退出", username: "用户名", password: "密码",
  signInFailed: "登录失败", language: "English",
  nav_dashboard: "监管看板", nav_alerts: "告警", nav_engineers: "监理工程师", nav_projects: "项目",
  nav_filings: "备案审查", nav_registry: "登记管理", nav_map: "实时地图", nav_me: "我的工作台",
  nav_devices: "我的设备",
  role_admin: "管理员", role_regulator: "监管人员", role_engineer: "监理工程师", role_vendor: "设备厂商",
  region: "区域", all: "全部", type: "类型", status: "状态", from: "起始", to: "截止",
  engineer: "工程师", project: "项目", device: "设备", search: "搜索", reset: "重置", time: "时间",
  details: "详情", history: "处理记录", note: "备注", ack: "确认", resolve: "处置", addNote: "添加备注",
  bulkAck: "批量确认", bulkResolve: "批量处置", export: "导出 CSV", selected: "已选", total: "共",
  prev: "上一页", next: "下一页", page: "页", none: "无", loading: "加载中…", save: "保存",
  create: "新建", cancel: "取消", close: "关闭", open: "打开", actions: "操作", name: "姓名",
  status_open: "未处理", status_acked: "已确认", status_resolved: "已处置", status_note: "备注",
  alert_cross_region_unfiled: "跨区域未备案执业", alert_impossible_travel: "不可能的移动",
  alert_sensor_threshold: "传感器超限", alert_device_offline: "设备离线", alert_missing_log: "缺少监理日志",
  alert_practice_while_suspended: "暂停期间执业", alert_chief_absent: "总监缺勤",
  alert_notice_overdue: "整改逾期",
  cert: "证书", cert_valid: "有效", cert_suspended: "暂停", cert_expired: "过期",
  registration: "注册信息", registeredRegion: "注册地", certNumber: "证书编号", certValidTo: "有效期至",
  employer: "聘用单位", changes: "变更记录", credit: "信用", tier: "等级", score: "得分",
  breakdown: "构成", attendance: "出勤", minutes: "分钟", present: "在岗", tracks: "轨迹回放",
  date: "日期", play: "播放", records: "监理记录", notices: "整改通知", evidence: "证据链",
  verify: "校验", verified: "完整", broken: "已损坏", ce: "继续教育", hours: "学时",
  eligibility: "任职资格", check: "检查", eligible: "符合", notEligible: "不符合", role: "角色",
  chief: "总监", member: "监理人员", boundary: "项目边界", assignments: "人员任免",
  onSiteNow: "当前在场", dossier: "项目档案", pdf: "下载 PDF", category: "分类", text: "内容",
  photos: "照片", deadline: "期限", kind: "类型", issued: "下发", closed: "已关闭", rectify: "整改",
  engineers_registered: "注册工程师", engineers_valid: "证书有效", engineers_assigned: "在岗工程师",
  on_site_rate: "今日到岗率", notice_closure: "整改闭环率", alertsOverTime: "告警趋势",
  recordCategories: "记录分类", districts: "区县对比", projects: "项目数", alerts: "告警数",
  openAlerts: "未处理告警", checkIn: "签到", checkOut: "签退", myLocation: "当前位置",
  writeRecord: "填写监理记录", submit: "提交", myAlerts: "我的告警", myAttendance: "我的出勤",
  readings: "最新读数", thresholds: "阈值", reportInterval: "上报间隔(秒)", lastReading: "最后上报",
  accounts: "账户", tokens: "令牌", import: "批量导入", dryRun: "试导入", rowErrors: "逐行错误",
  row: "行", field: "字段", conflict: "数据已被他人修改，请刷新后重试", refresh: "刷新",
  saved: "已保存", drawBoundary: "在地图上点击绘制边界", uploadBoundary: "上传 GeoJSON 边界",
  clearDrawing: "清除", revoke: "撤销", validFrom: "生效", validTo: "失效", revoked: "已撤销",
  filingReview: "备案审查", newFiling: "新增备案", edit: "编辑", expiresAt: "过期时间",
  forbidden: "无权访问", notFound: "未找到", error: "错误", liveMap: "实时地图",
  sent: "已发送", rejected: "被拒绝", days: "天", perDay: "每日", reasons: "原因",
  category_quality: "质量", category_safety: "安全", category_progress: "进度",
  category_materials: "材料", category_environment: "环境", category_documents: "资料",
  category_other: "其他",
};

const en = {
  app: "SiteWatch supervision", signIn: "Sign in", signOut: "Sign out", username: "Username",
  password: "Password", signInFailed: "Sign-in failed", language: "中文",
  nav_dashboard: "Dashboard", nav_alerts: "Alerts", nav_engineers: "Engineers",
  nav_projects: "Projects", nav_filings: "Filing review", nav_registry: "Registry",
  nav_map: "Live map", nav_me: "My work", nav_devices: "My devices",
  role_admin: "Administrator", role_regulator: "Regulator", role_engineer: "Engineer",
  role_vendor: "Vendor",
  region: "Region", all: "All", type: "Type", status: "Status", from: "From", to: "To",
  engineer: "Engineer", project: "Project", device: "Device", search: "Search", reset: "Reset",
  time: "Time", details: "Details", history: "History", note: "Note", ack: "Acknowledge",
  resolve: "Resolve", addNote: "Add note", bulkAck: "Acknowledge selected",
  bulkResolve: "Resolve selected", export: "Export CSV", selected: "selected", total: "Total",
  prev: "Previous", next: "Next", page: "page", none: "None", loading: "Loading…", save: "Save",
  create: "Create", cancel: "Cancel", close: "Close", open: "Open", actions: "Actions",
  name: "Name", status_open: "Open", status_acked: "Acknowledged", status_resolved: "Resolved",
  status_note: "Note",
  alert_cross_region_unfiled: "Cross-region, unfiled", alert_impossible_travel: "Impossible travel",
  alert_sensor_threshold: "Sensor over limit", alert_device_offline: "Device offline",
  alert_missing_log: "Missing log", alert_practice_while_suspended: "Practice while suspended",
  alert_chief_absent: "Chief absent", alert_notice_overdue: "Notice overdue",
  cert: "Certificate", cert_valid: "Valid", cert_suspended: "Suspended", cert_expired: "Expired",
  registration: "Registration", registeredRegion: "Registered in", certNumber: "Certificate no.",
  certValidTo: "Valid to", employer: "Employer", changes: "Changes", credit: "Credit",
  tier: "Tier", score: "Score", breakdown: "Breakdown", attendance: "Attendance",
  minutes: "minutes", present: "Present", tracks: "Track playback", date: "Date", play: "Play",
  records: "Records", notices: "Notices", evidence: "Evidence chain", verify: "Verify",
  verified: "intact", broken: "broken", ce: "Continuing education", hours: "Hours",
  eligibility: "Eligibility", check: "Check", eligible: "Eligible", notEligible: "Not eligible",
  role: "Role", chief: "Chief", member: "Member", boundary: "Boundary",
  assignments: "Assignments", onSiteNow: "On site now", dossier: "Dossier", pdf: "Download PDF",
  category: "Category", text: "Text", photos: "Photos", deadline: "Deadline", kind: "Kind",
  issued: "Issued", closed: "Closed", rectify: "Rectify",
  engineers_registered: "Engineers registered", engineers_valid: "Certificates valid",
  engineers_assigned: "Engineers assigned", on_site_rate: "On site today",
  notice_closure: "Notice closure", alertsOverTime: "Alerts over time",
  recordCategories: "Record categories", districts: "Districts compared", projects: "Projects",
  alerts: "Alerts", openAlerts: "Open alerts", checkIn: "Check in", checkOut: "Check out",
  myLocation: "My location", writeRecord: "Write a record", submit: "Submit",
  myAlerts: "My alerts", myAttendance: "My attendance", readings: "Latest readings",
  thresholds: "Thresholds", reportInterval: "Report interval (s)", lastReading: "Last reading",
  accounts: "Accounts", tokens: "Tokens", import: "Bulk import", dryRun: "Dry run",
  rowErrors: "Row errors", row: "Row", field: "Field",
  conflict: "Someone else changed this meanwhile: reload and try again", refresh: "Reload",
  saved: "Saved", drawBoundary: "Click on the map to draw the boundary",
  uploadBoundary: "Upload a GeoJSON boundary", clearDrawing: "Clear", revoke: "Revoke",
  validFrom: "Valid from", validTo: "Valid to", revoked: "Revoked", filingReview: "Filing review",
  newFiling: "New filing", edit: "Edit", expiresAt: "Expires", forbidden: "Not allowed",
  notFound: "Not found", error: "Error", liveMap: "Live map", sent: "Sent", rejected: "Rejected",
  days: "days", perDay: "per day", reasons: "Reasons",
  category_quality: "Quality", category_safety: "Safety", category_progress: "Progress",
  category_materials: "Materials", category_environment: "Environment",
  category_documents: "Documents", category_other: "Other",
};

const tables = { zh, en };

export function t(key) {
  return tables[lang.value][key] ?? tables.en[key] ?? key;
}

// a label for a value of a kind ("alert", "status", "cert"): translated when known
export function label(kind, value) {
  const key = `${kind}_${value}`;
  return tables[lang.value][key] ?? value;
}
