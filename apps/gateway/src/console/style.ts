/**
 * The console's style sheet, served as a static asset (never inline: the CSP allows no inline style).
 * Colours keep a contrast ratio of at least 4.5:1 against their background (WCAG AA).
 */
export const CONSOLE_CSS = `
:root { --fg: #1b1f24; --muted: #4a5360; --bg: #ffffff; --panel: #f4f6f8; --line: #c9d1d9;
  --accent: #0b5cad; --ok: #176b2c; --warn: #8a5200; --bad: #b3261e; --focus: #ffbf47; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
time { white-space: nowrap; }
a:focus, button:focus, input:focus, select:focus, textarea:focus { outline: 3px solid var(--focus); outline-offset: 1px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 8px; top: 8px; background: var(--bg); padding: 4px 8px; z-index: 2; }
header.top { display: flex; align-items: center; gap: 24px; padding: 8px 20px; background: #102a43; color: #fff; }
header.top a { color: #fff; text-decoration: none; padding: 6px 8px; border-radius: 4px; }
header.top a[aria-current="page"] { background: #243b53; text-decoration: underline; }
header.top .brand { font-weight: 700; }
header.top nav ul { display: flex; gap: 4px; list-style: none; margin: 0; padding: 0; }
header.top .who { margin-left: auto; font-size: 13px; }
main { padding: 16px 20px 40px; max-width: 1400px; }
h1 { font-size: 22px; margin: 8px 0 16px; }
h2 { font-size: 17px; margin: 20px 0 8px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; background: var(--panel); }
.card .v { font-size: 24px; font-weight: 700; font-variant-numeric: tabular-nums; }
.card .v.good { color: var(--ok); }
.card .l { color: var(--muted); font-size: 13px; }
.strip { display: flex; flex-wrap: wrap; gap: 4px; list-style: none; padding: 0; margin: 8px 0; }
.strip li { min-width: 72px; padding: 6px 8px; border-radius: 4px; font-size: 13px; color: #fff; }
.strip a { color: #fff; font-weight: 700; }
.strip .ok { background: var(--ok); } .strip .warn { background: var(--warn); } .strip .bad { background: var(--bad); }
.badge { display: inline-block; padding: 1px 6px; border-radius: 3px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; }
.badge.bad { color: var(--bad); } .badge.warn { color: var(--warn); } .badge.ok { color: var(--ok); } .badge.muted { color: var(--muted); }
form.filters { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: flex-end; padding: 10px; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; }
form.filters fieldset { border: 1px solid var(--line); border-radius: 4px; margin: 0; padding: 4px 8px; max-width: 640px; }
form.filters fieldset label { display: inline-block; margin-right: 10px; font-size: 13px; }
label.field { display: flex; flex-direction: column; font-size: 13px; color: var(--muted); gap: 2px; }
input, select, textarea, button { font: inherit; }
input[type=text], input[type=number], input[type=datetime-local], select, textarea { padding: 4px 6px; border: 1px solid #6b7785; border-radius: 4px; color: var(--fg); background: #fff; }
button { padding: 5px 12px; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
.presets { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0; padding: 0; list-style: none; }
.presets a { display: inline-block; padding: 3px 10px; border: 1px solid var(--accent); border-radius: 14px; text-decoration: none; }
.presets a[aria-current="true"] { background: var(--accent); color: #fff; }
.pager { display: flex; gap: 16px; margin: 10px 0; }
.muted { color: var(--muted); }
.error { color: var(--bad); font-weight: 600; }
.notice { border-left: 4px solid var(--accent); background: var(--panel); padding: 8px 12px; margin: 10px 0; }
.notice.bad { border-color: var(--bad); }
ol.timeline { list-style: none; padding: 0; margin: 0; border-left: 3px solid var(--line); }
ol.timeline li { margin: 0 0 8px 0; padding: 4px 12px; position: relative; }
ol.timeline li .when { color: var(--muted); font-size: 13px; font-variant-numeric: tabular-nums; margin-right: 8px; }
.actions { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 10px; }
.actions form { border: 1px solid var(--line); border-radius: 6px; padding: 10px; display: flex; flex-direction: column; gap: 6px; }
form.stack { display: flex; flex-direction: column; gap: 8px; max-width: 520px; margin: 12px 0; padding: 10px; border: 1px solid var(--line); border-radius: 6px; }
form.stack button { align-self: flex-start; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
progress { width: 320px; height: 18px; }
#bulk-progress table { max-width: 480px; }
.htmx-indicator { opacity: 0; } .htmx-request .htmx-indicator, .htmx-request.htmx-indicator { opacity: 1; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;
