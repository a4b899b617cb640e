"""Task manager API: tasks filtered by status, priority and assignee, sorted, paged and validated.

Routes (under /api/): tasks, tasks/{id}, stats.
Storage in `state`: task_seq (last id), task:{id} (null once deleted).
"""
import datetime

FIELDS = ("title", "status", "priority", "assignee", "due")
FILTERS = ("status", "priority", "assignee", "due_before", "q")
SORTS = ("id", "-id", "priority", "-priority", "due", "-due", "status", "-status")


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(status, code, message, details=None):
    payload = {"code": code, "message": message}
    if details:
        payload["details"] = details
    return {"status": status, "json": {"error": payload}}


def invalid(problems):
    text = "; ".join(p["field"] + ": " + p["message"] for p in problems)
    return error(400, "validation_failed", "invalid request: " + text, problems)


def one_of(value, allowed):
    return "must be one of: " + ", ".join(allowed) + " (got " + repr(value)[:40] + ")"


def valid_date(text):
    try:
        datetime.date.fromisoformat(text)
        return True
    except ValueError:
        return False


def check_task(data, partial):
    problems = []
    for name in sorted(set(data) - set(FIELDS)):
        problems.append({"field": name, "message": "unknown field (allowed: " + ", ".join(FIELDS) + ")"})
    if not partial or "title" in data:
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            problems.append({"field": "title", "message": "is required (a non-empty string)"})
        elif len(title) > 200:
            problems.append({"field": "title", "message": "is longer than 200 characters"})
    for name, allowed in (("status", config["statuses"]), ("priority", config["priorities"])):
        if name in data and data[name] not in allowed:
            problems.append({"field": name, "message": one_of(data[name], allowed)})
    assignee = data.get("assignee")
    if assignee is not None and (not isinstance(assignee, str) or not 0 < len(assignee) <= 50):
        problems.append({"field": "assignee", "message": "must be a name of 1 to 50 characters, or null"})
    due = data.get("due")
    if due is not None and (not isinstance(due, str) or not valid_date(due)):
        problems.append({"field": "due", "message": "must be a date like 2024-05-01, or null"})
    return problems


def as_list(value):
    values = value if isinstance(value, list) else [value]
    found = []
    for item in values:
        found.extend(part for part in item.split(",") if part)
    return found


def read_filters(query):
    problems = []
    for name in sorted(set(query) - set(FILTERS) - {"sort", "page", "per_page"}):
        problems.append({"field": name, "message": "unknown parameter (filters: " + ", ".join(FILTERS) + ")"})
    wanted = {}
    for name, allowed in (("status", config["statuses"]), ("priority", config["priorities"])):
        if name in query:
            wanted[name] = as_list(query[name])
            for value in wanted[name]:
                if value not in allowed:
                    problems.append({"field": name, "message": one_of(value, allowed)})
    if "assignee" in query:
        wanted["assignee"] = as_list(query["assignee"])
    if "due_before" in query:
        if not isinstance(query["due_before"], str) or not valid_date(query["due_before"]):
            problems.append({"field": "due_before", "message": "must be a date like 2024-05-01"})
        wanted["due_before"] = query["due_before"]
    if "q" in query:
        wanted["q"] = str(query["q"]).lower()
    sort = query.get("sort", "id")
    if sort not in SORTS:
        problems.append({"field": "sort", "message": one_of(sort, SORTS)})
    return wanted, sort, problems


def matches(task, wanted):
    for name in ("status", "priority", "assignee"):
        if name in wanted and task[name] not in wanted[name]:
            return False
    if "due_before" in wanted and (task["due"] is None or task["due"] >= wanted["due_before"]):
        return False
    if "q" in wanted and wanted["q"] not in task["title"].lower():
        return False
    return True


def sort_key(sort):
    """The key of one sort field; ties keep id order because the sort is stable (even reversed)."""
    name = sort.lstrip("-")
    if name == "priority":
        return lambda t: config["priorities"].index(t["priority"])
    if name == "status":
        return lambda t: config["statuses"].index(t["status"])
    if name == "due":
        return lambda t: (t["due"] is None, t["due"] or "")
    return lambda t: t["id"]


def page_numbers(query):
    problems = []
    numbers = {"page": 1, "per_page": config["default_per_page"]}
    for name in ("page", "per_page"):
        raw = query.get(name)
        if raw is None:
            continue
        if not isinstance(raw, str) or not raw.isdigit() or int(raw) < 1:
            problems.append({"field": name, "message": "must be a positive integer"})
        else:
            numbers[name] = int(raw)
    if numbers["per_page"] > config["max_per_page"]:
        problems.append({"field": "per_page", "message": "must be at most " + str(config["max_per_page"])})
    return numbers, problems


def all_tasks():
    last = min(state.get("task_seq") or 0, config["max_tasks_scanned"])
    found = []
    for task_id in range(1, last + 1):
        task = state.get("task:" + str(task_id))
        if task is not None:
            found.append(task)
    return found


def list_tasks(query):
    wanted, sort, problems = read_filters(query)
    numbers, more = page_numbers(query)
    problems.extend(more)
    if problems:
        return invalid(problems)
    found = [t for t in all_tasks() if matches(t, wanted)]
    found.sort(key=sort_key(sort), reverse=sort.startswith("-"))
    start = (numbers["page"] - 1) * numbers["per_page"]
    return {"items": found[start:start + numbers["per_page"]], "total": len(found), "page": numbers["page"],
            "per_page": numbers["per_page"]}


def create_task(data):
    problems = check_task(data, False)
    if problems:
        return invalid(problems)
    task_id = state.incr("task_seq")
    task = {"id": task_id, "title": data["title"].strip(), "status": data.get("status", "todo"),
            "priority": data.get("priority", "normal"), "assignee": data.get("assignee"),
            "due": data.get("due"), "created_at": now(), "updated_at": None}
    state.set("task:" + str(task_id), task)
    return {"status": 201, "headers": {"Location": "/api/tasks/" + str(task_id)}, "json": task}


def update_task(task, data):
    problems = check_task(data, True)
    if problems:
        return invalid(problems)
    for name in FIELDS:
        if name in data:
            task[name] = data[name].strip() if name == "title" else data[name]
    task["updated_at"] = now()
    state.set("task:" + str(task["id"]), task)
    return task


def stats():
    counts = {status: 0 for status in config["statuses"]}
    for task in all_tasks():
        counts[task["status"]] = counts[task["status"]] + 1
    return {"by_status": counts, "total": sum(counts.values())}


def handle(request):
    parts = [p for p in request["path_params"]["rest"].split("/") if p]
    method = request["method"]
    if parts == ["stats"] and method == "GET":
        return stats()
    if not parts or parts[0] != "tasks" or len(parts) > 2:
        return error(404, "not_found", "no such resource: " + request["path"])
    data = request["json"]
    if method in ("POST", "PATCH") and not isinstance(data, dict):
        return error(400, "invalid_body", "send the task as a JSON object (Content-Type: application/json)")
    if len(parts) == 1:
        if method == "GET":
            return list_tasks(request["query"])
        if method == "POST":
            return create_task(data)
        return error(405, "method_not_allowed", "use GET or POST on /api/tasks")
    task = state.get("task:" + parts[1]) if parts[1].isdigit() else None
    if task is None:
        return error(404, "not_found", "no task with id " + repr(parts[1])[:40])
    if method == "GET":
        return task
    if method == "PATCH":
        return update_task(task, data)
    if method == "DELETE":
        state.set("task:" + parts[1], None)
        return {"status": 204}
    return error(405, "method_not_allowed", "use GET, PATCH or DELETE on a task")
