/*
 * template.c - the public chat-template API over the Jinja interpreter:
 * parse once, render many times; prepares the variables the way
 * transformers' render_jinja_template does (messages, tools, documents=None,
 * add_generation_prompt, plus enable_thinking / preserve_thinking when set).
 */
#include "engine/template.h"

#include "common/buf.h"
#include "common/err.h"
#include "engine/jinja.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

struct tpl {
    struct jarena arena; /* tokens' strings and the tree */
    struct jnode *root;
};

int tpl_open(struct tpl **out, const char *text, size_t len)
{
    *out = NULL;
    struct tpl *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(ERR_NOMEM, "out of memory");
    /* a template is at most a few hundred KB; cap what a hostile one can take */
    t->arena.limit = (size_t)256 << 20;
    struct jtoks toks;
    int rc = jinja_lex(&t->arena, text, len, &toks);
    if (rc == 0) {
        rc = jinja_parse(&t->arena, &toks, &t->root);
        jinja_toks_free(&toks);
    }
    if (rc < 0) {
        tpl_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

void tpl_close(struct tpl *t)
{
    if (!t)
        return;
    jinja_arena_free(&t->arena);
    free(t);
}

/* transformers' _alias_reasoning_fields: a message with a non-null
 * reasoning_content, thinking or reasoning (first found) becomes
 * {"thinking": r, **message, "reasoning_content": r}. */
static int alias_reasoning(struct jarena *a, struct jv *msg)
{
    static const char *const fields[] = { "reasoning_content", "thinking", "reasoning" };
    struct jv *r = NULL;
    for (int k = 0; k < 3 && !r; k++) {
        struct jv *v = jv_dict_get(msg->u.d, fields[k], strlen(fields[k]));
        if (v && v->t != JV_NONE)
            r = v;
    }
    if (!r)
        return 0;
    struct jv reasoning = *r, nd, key;
    int rc;
    if ((rc = jv_dict(a, msg->u.d->n + 2, &nd)) < 0 || (rc = jv_str(a, "thinking", 8, &key)) < 0 ||
        (rc = jv_dict_set(a, nd.u.d, key, reasoning)) < 0)
        return rc;
    for (size_t i = 0; i < msg->u.d->n; i++)
        if ((rc = jv_dict_set(a, nd.u.d, msg->u.d->k[i], msg->u.d->v[i])) < 0)
            return rc;
    if ((rc = jv_str(a, "reasoning_content", 17, &key)) < 0 ||
        (rc = jv_dict_set(a, nd.u.d, key, reasoning)) < 0)
        return rc;
    *msg = nd;
    return 0;
}

static int render_values(const struct tpl *t, struct jarena *a, struct jv messages, struct jv tools,
                         const struct tpl_opts *o, char **out, size_t *len)
{
    int rc;
    if (messages.t != JV_LIST)
        return err_set(ERR_INVAL, "messages: expected a JSON array of messages");
    for (size_t i = 0; i < messages.u.l->n; i++) {
        if (messages.u.l->v[i].t != JV_DICT)
            return err_set(ERR_INVAL, "messages[%zu]: expected an object", i);
        if ((rc = alias_reasoning(a, &messages.u.l->v[i])) < 0)
            return rc;
    }
    if (tools.t != JV_NONE && tools.t != JV_LIST)
        return err_set(ERR_INVAL, "tools: expected a JSON array");
    struct jvar vars[6];
    size_t nv = 0;
    vars[nv++] = (struct jvar){ "messages", messages };
    vars[nv++] = (struct jvar){ "tools", tools };
    vars[nv++] = (struct jvar){ "documents", jv_none() };
    vars[nv++] = (struct jvar){ "add_generation_prompt", jv_bool(o && o->add_generation_prompt) };
    if (o && o->enable_thinking != TPL_UNSET)
        vars[nv++] = (struct jvar){ "enable_thinking", jv_bool(o->enable_thinking == TPL_TRUE) };
    if (o && o->preserve_thinking != TPL_UNSET)
        vars[nv++] =
            (struct jvar){ "preserve_thinking", jv_bool(o->preserve_thinking == TPL_TRUE) };
    struct jlimits lim = {
        .max_output = o && o->max_output ? o->max_output : (size_t)64 << 20,
        .max_memory = o && o->max_memory ? o->max_memory : (size_t)512 << 20,
        .max_steps = o && o->max_steps ? o->max_steps : 10000000ull,
        .max_depth = o && o->max_depth ? o->max_depth : 400,
    };
    a->limit = lim.max_memory;
    struct buf b = { 0 };
    rc = jinja_render(a, t->root, vars, nv, &lim, &b);
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    *len = b.len;
    if (!(*out = buf_detach(&b)))
        return err_set(ERR_NOMEM, "out of memory");
    return 0;
}

int tpl_render(const struct tpl *t, const struct cJSON *messages, const struct cJSON *tools,
               const struct tpl_opts *o, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    struct jarena a = { 0 };
    struct jv m, tl = jv_none();
    int rc = jv_from_cjson(&a, messages, &m);
    if (rc == 0 && tools && !cJSON_IsNull(tools))
        rc = jv_from_cjson(&a, tools, &tl);
    if (rc == 0)
        rc = render_values(t, &a, m, tl, o, out, len);
    jinja_arena_free(&a);
    return rc;
}

int tpl_render_json(const struct tpl *t, const char *json, size_t json_len, const char *what,
                    const char *tools_json, size_t tools_len, const char *tools_what,
                    const struct tpl_opts *o, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    struct jarena a = { 0 };
    struct jv doc, m, tl = jv_none();
    int rc = jv_parse_json(&a, json, json_len, what ? what : "messages", &doc);
    if (rc < 0)
        goto done;
    if (doc.t == JV_DICT) {
        struct jv *mv = jv_dict_get(doc.u.d, "messages", 8), *tv = jv_dict_get(doc.u.d, "tools", 5);
        if (!mv) {
            rc = err_set(ERR_INVAL, "%s: object without a \"messages\" array",
                         what ? what : "messages");
            goto done;
        }
        m = *mv;
        if (tv)
            tl = *tv;
    } else
        m = doc;
    if (tools_json &&
        (rc = jv_parse_json(&a, tools_json, tools_len, tools_what ? tools_what : "tools", &tl)) < 0)
        goto done;
    rc = render_values(t, &a, m, tl, o, out, len);
done:
    jinja_arena_free(&a);
    return rc;
}

int tpl_open_builtin(struct tpl **out)
{
    const char *s = tpl_builtin_text();
    return tpl_open(out, s, strlen(s));
}

/* ---------------------------------------------------------------- built-in template
 * The official Qwen3.6 chat template (chat_template.jinja of
 * Qwen/Qwen3.6-35B-A3B, Apache-2.0 like the model weights; copied verbatim
 * from /work/shared/reference/qwen3.6-chat_template.jinja). Used for
 * checkpoints that ship no template, such as the generated test models. */
static const char builtin[] =
    "{%- set image_count = namespace(value=0) %}\n"
    "{%- set video_count = namespace(value=0) %}\n"
    "{%- macro render_content(content, do_vision_count, is_system_content=false) %}\n"
    "    {%- if content is string %}\n"
    "        {{- content }}\n"
    "    {%- elif content is iterable and content is not mapping %}\n"
    "        {%- for item in content %}\n"
    "            {%- if 'image' in item or 'image_url' in item or item.type == 'image' %}\n"
    "                {%- if is_system_content %}\n"
    "                    {{- raise_exception('System message cannot contain images.') }}\n"
    "                {%- endif %}\n"
    "                {%- if do_vision_count %}\n"
    "                    {%- set image_count.value = image_count.value + 1 %}\n"
    "                {%- endif %}\n"
    "                {%- if add_vision_id %}\n"
    "                    {{- 'Picture ' ~ image_count.value ~ ': ' }}\n"
    "                {%- endif %}\n"
    "                {{- '<|vision_start|><|image_pad|><|vision_end|>' }}\n"
    "            {%- elif 'video' in item or item.type == 'video' %}\n"
    "                {%- if is_system_content %}\n"
    "                    {{- raise_exception('System message cannot contain videos.') }}\n"
    "                {%- endif %}\n"
    "                {%- if do_vision_count %}\n"
    "                    {%- set video_count.value = video_count.value + 1 %}\n"
    "                {%- endif %}\n"
    "                {%- if add_vision_id %}\n"
    "                    {{- 'Video ' ~ video_count.value ~ ': ' }}\n"
    "                {%- endif %}\n"
    "                {{- '<|vision_start|><|video_pad|><|vision_end|>' }}\n"
    "            {%- elif 'text' in item %}\n"
    "                {{- item.text }}\n"
    "            {%- else %}\n"
    "                {{- raise_exception('Unexpected item type in content.') }}\n"
    "            {%- endif %}\n"
    "        {%- endfor %}\n"
    "    {%- elif content is none or content is undefined %}\n"
    "        {{- '' }}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Unexpected content type.') }}\n"
    "    {%- endif %}\n"
    "{%- endmacro %}\n"
    "{%- if not messages %}\n"
    "    {{- raise_exception('No messages provided.') }}\n"
    "{%- endif %}\n"
    "{%- if tools and tools is iterable and tools is not mapping %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {{- \"# Tools\\n\\nYou have access to the following functions:\\n\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\" }}\n"
    "    {{- '\\n\\nIf you choose to call a function ONLY reply in the following format with NO "
    "suffix:\\n\\n<tool_call>\\n<function=example_function_name>\\n<parameter=example_parameter_1>"
    "\\nvalue_1\\n</parameter>\\n<parameter=example_parameter_2>\\nThis is the value for the "
    "second parameter\\nthat can span\\nmultiple "
    "lines\\n</parameter>\\n</function>\\n</tool_call>\\n\\n<IMPORTANT>\\nReminder:\\n- Function "
    "calls MUST follow the specified format: an inner <function=...></function> block must be "
    "nested within <tool_call></tool_call> XML tags\\n- Required parameters MUST be specified\\n- "
    "You may provide optional reasoning for your function call in natural language BEFORE the "
    "function call, but NOT after\\n- If there is no function call available, answer the question "
    "like normal with your current knowledge and do not tell the user about function "
    "calls\\n</IMPORTANT>' }}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {%- set content = render_content(messages[0].content, false, true)|trim %}\n"
    "        {%- if content %}\n"
    "            {{- '\\n\\n' + content }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "    {{- '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {%- set content = render_content(messages[0].content, false, true)|trim %}\n"
    "        {{- '<|im_start|>system\\n' + content + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for message in messages[::-1] %}\n"
    "    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" %}\n"
    "        {%- set content = render_content(message.content, false)|trim %}\n"
    "        {%- if not(content.startswith('<tool_response>') and "
    "content.endswith('</tool_response>')) %}\n"
    "            {%- set ns.multi_step_tool = false %}\n"
    "            {%- set ns.last_query_index = index %}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if ns.multi_step_tool %}\n"
    "    {{- raise_exception('No user query found in messages.') }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- set content = render_content(message.content, true)|trim %}\n"
    "    {%- if message.role == \"system\" %}\n"
    "        {%- if not loop.first %}\n"
    "            {{- raise_exception('System message must be at the beginning.') }}\n"
    "        {%- endif %}\n"
    "    {%- elif message.role == \"user\" %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {%- set reasoning_content = '' %}\n"
    "        {%- if message.reasoning_content is string %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n"
    "        {%- else %}\n"
    "            {%- if '</think>' in content %}\n"
    "                {%- set reasoning_content = "
    "content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}\n"
    "                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}\n"
    "            {%- endif %}\n"
    "        {%- endif %}\n"
    "        {%- set reasoning_content = reasoning_content|trim %}\n"
    "        {%- if (preserve_thinking is defined and preserve_thinking is true) or (loop.index0 > "
    "ns.last_query_index) %}\n"
    "            {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content + "
    "'\\n</think>\\n\\n' + content }}\n"
    "        {%- else %}\n"
    "            {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "        {%- endif %}\n"
    "        {%- if message.tool_calls and message.tool_calls is iterable and message.tool_calls "
    "is not mapping %}\n"
    "            {%- for tool_call in message.tool_calls %}\n"
    "                {%- if tool_call.function is defined %}\n"
    "                    {%- set tool_call = tool_call.function %}\n"
    "                {%- endif %}\n"
    "                {%- if loop.first %}\n"
    "                    {%- if content|trim %}\n"
    "                        {{- '\\n\\n<tool_call>\\n<function=' + tool_call.name + '>\\n' }}\n"
    "                    {%- else %}\n"
    "                        {{- '<tool_call>\\n<function=' + tool_call.name + '>\\n' }}\n"
    "                    {%- endif %}\n"
    "                {%- else %}\n"
    "                    {{- '\\n<tool_call>\\n<function=' + tool_call.name + '>\\n' }}\n"
    "                {%- endif %}\n"
    "                {%- if tool_call.arguments is defined %}\n"
    "                    {%- for args_name, args_value in tool_call.arguments|items %}\n"
    "                        {{- '<parameter=' + args_name + '>\\n' }}\n"
    "                        {%- set args_value = args_value | string if args_value is string else "
    "args_value | tojson | safe %}\n"
    "                        {{- args_value }}\n"
    "                        {{- '\\n</parameter>\\n' }}\n"
    "                    {%- endfor %}\n"
    "                {%- endif %}\n"
    "                {{- '</function>\\n</tool_call>' }}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.previtem and loop.previtem.role != \"tool\" %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if not loop.last and loop.nextitem.role != \"tool\" %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- elif loop.last %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Unexpected message role.') }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<think>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}";

const char *tpl_builtin_text(void) { return builtin; }
