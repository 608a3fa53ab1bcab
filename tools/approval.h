/*
 * approval.h - approval modes and per-tool rules (appr_): for each tool call
 * the model makes, allow it, ask the user, or deny it.
 *
 * Modes (config key `approval`, the UI's Shift+Tab, `lode run --approval`):
 *   plan       read-only tools only; everything else denied
 *   default    read-only tools run; ask before any write, shell command or fetch
 *   auto-edit  read-only tools and file edits inside the workspace run; shell and fetch ask
 *   yolo       everything runs without a question (the path policy and the sandbox still apply)
 * Rules (config keys `tools.allow` and `tools.deny`, lists of patterns
 * "TOOL" or "TOOL(GLOB)", GLOB matched against the call's main argument:
 * run_shell's command, a file tool's path, web_fetch's url): deny wins over
 * everything, then allow turns an "ask" into "allow"; in plan mode allow
 * rules never enable a non-read-only tool. grep and glob match their
 * pattern; list_dir without a path matches ".".
 *
 * GLOB: '*' (any run, '/' included), '?', "[a-z]" / "[!a-z]", '\' escapes,
 * matched against the whole argument. Deny rules also match other spellings
 * (a path lexically normalized and each of its tails after a '/', so
 * "read_file(.env)" covers "./.env" and "sub/.env"; each part of a chained
 * shell command, with sudo/env/timeout/xargs... skipped). Allow rules match
 * strictly: the normalized path, or every part of a chained command on its
 * own, and never a command with $(...), `...` or <(...). An argument too
 * long (16 KiB) or a command with too many parts (256) to check is denied
 * when a deny rule with a GLOB exists for the tool, else left to the mode.
 * Deny rules for run_shell are a convenience, not a boundary (quoting can
 * hide a word): the path policy and the sandbox are the boundary.
 *
 * Only the user sets modes and rules; no tool argument and no model output
 * reaches them (engineering-style.md §B1).
 */
#ifndef LODE_TOOLS_APPROVAL_H
#define LODE_TOOLS_APPROVAL_H

struct cJSON;

enum appr_mode { APPR_PLAN, APPR_DEFAULT, APPR_AUTO_EDIT, APPR_YOLO, APPR_NMODES };
enum appr_verdict { APPR_ALLOW, APPR_ASK, APPR_DENY };

/* "plan" | "default" | "auto-edit" | "yolo" -> mode, -1 when unknown; and back. */
int appr_mode_parse(const char *s);
const char *appr_mode_name(int mode);
/* The next mode in the UI's cycle (plan -> default -> auto-edit -> yolo -> plan). */
int appr_mode_next(int mode);

struct appr_rules;
/* Parses rules from the two configuration lists (JSON arrays of strings as
 * text, or NULL/"" for none). ERR_INVAL names the bad pattern. Caller owns
 * *out (appr_rules_free accepts NULL). */
int appr_rules_new(struct appr_rules **out, const char *allow_json, const char *deny_json);
void appr_rules_free(struct appr_rules *r);

/* The verdict for calling tool `name` with `args` (a JSON object; NULL = {})
 * in `mode` under rules r (NULL: none). reason (may be NULL) gets a short
 * static-or-thread-local text: why it is denied or what would be asked
 * ("run_shell: make test", "write outside plan mode"). Unknown tools: deny. */
enum appr_verdict appr_decide(int mode, const struct appr_rules *r, const char *name,
                              const struct cJSON *args, const char **reason);

#endif
