// Kept for scripts written against the earlier wrk driver: the load now comes from hey
// (see load.mjs for why).
export { load as wrk, row, HEADER } from "./load.mjs";
