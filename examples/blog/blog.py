"""Blog API: posts (tags, published flag), comments (paged, validated) and search (scored).

Routes (under /api/): posts, posts/{id}, posts/{id}/comments, search.
Storage in `state`: post_seq (last id), post:{id}; comment_seq:{post id}, comment:{post id}:{n}.
"""
import datetime
import re

WORD = re.compile(r"[a-z0-9]+")
TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
POST_FIELDS = {"title", "body", "author", "tags", "published"}
COMMENT_FIELDS = {"author", "text"}


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


def text_problem(value, limit, required):
    if value is None:
        return "is required" if required else None
    if not isinstance(value, str):
        return "must be a string"
    if required and not value.strip():
        return "must not be empty"
    if len(value) > limit:
        return "is longer than " + str(limit) + " characters"
    return None


def check_post(data, partial):
    problems = []
    for name in sorted(set(data) - POST_FIELDS):
        problems.append({"field": name, "message": "unknown field (allowed: " + ", ".join(sorted(POST_FIELDS)) + ")"})
    limits = {"title": 200, "body": 20000, "author": 80}
    for name in ("title", "body", "author"):
        if partial and name not in data:
            continue
        problem = text_problem(data.get(name), limits[name], True)
        if problem:
            problems.append({"field": name, "message": problem})
    if "tags" in data:
        tags = data["tags"]
        if not isinstance(tags, list) or len(tags) > config["max_tags"]:
            message = "must be a list of at most " + str(config["max_tags"]) + " tags"
            problems.append({"field": "tags", "message": message})
        else:
            for tag in tags:
                if not isinstance(tag, str) or not TAG.match(tag):
                    message = "tag " + repr(tag)[:40] + " must be lower-case letters, digits and '-' (at most 30)"
                    problems.append({"field": "tags", "message": message})
    if "published" in data and not isinstance(data["published"], bool):
        problems.append({"field": "published", "message": "must be true or false"})
    return problems


def page_params(query, default_size):
    problems = []
    numbers = {}
    for name, default in (("page", 1), ("per_page", default_size)):
        raw = query.get(name)
        if raw is None:
            numbers[name] = default
        elif not isinstance(raw, str) or not raw.isdigit() or int(raw) < 1:
            problems.append({"field": name, "message": "must be a positive integer"})
        else:
            numbers[name] = int(raw)
    if not problems and numbers["per_page"] > config["max_per_page"]:
        problems.append({"field": "per_page", "message": "must be at most " + str(config["max_per_page"])})
    return numbers, problems


def paged(items, numbers):
    start = (numbers["page"] - 1) * numbers["per_page"]
    return {"items": items[start:start + numbers["per_page"]], "total": len(items),
            "page": numbers["page"], "per_page": numbers["per_page"]}


def all_posts():
    last = min(state.get("post_seq") or 0, config["max_posts_scanned"])
    posts = []
    for post_id in range(1, last + 1):
        post = state.get("post:" + str(post_id))
        if post is not None:
            posts.append(post)
    return posts


def load_post(raw_id):
    if not raw_id.isdigit():
        return None
    return state.get("post:" + raw_id)


def body_of(request):
    data = request["json"]
    if not isinstance(data, dict):
        return None
    return data


def list_posts(request):
    query = request["query"]
    numbers, problems = page_params(query, 20)
    wanted = query.get("published", "true")
    if wanted not in ("true", "false"):
        problems.append({"field": "published", "message": "must be true or false"})
    if problems:
        return invalid(problems)
    tag = query.get("tag")
    posts = [p for p in all_posts() if p["published"] == (wanted == "true") and (tag is None or tag in p["tags"])]
    posts.sort(key=lambda p: p["id"], reverse=True)
    return paged([summary(p) for p in posts], numbers)


def summary(post):
    return {"id": post["id"], "title": post["title"], "author": post["author"], "tags": post["tags"],
            "published": post["published"], "created_at": post["created_at"], "comments": post["comments"]}


def create_post(request):
    data = body_of(request)
    if data is None:
        return error(400, "invalid_body", "send a JSON object")
    problems = check_post(data, False)
    if problems:
        return invalid(problems)
    post_id = state.incr("post_seq")
    post = {"id": post_id, "title": data["title"].strip(), "body": data["body"], "author": data["author"],
            "tags": sorted(set(data.get("tags") or [])), "published": data.get("published", False),
            "created_at": now(), "updated_at": None, "comments": 0}
    state.set("post:" + str(post_id), post)
    return {"status": 201, "headers": {"Location": "/api/posts/" + str(post_id)}, "json": post}


def change_post(request, post):
    data = body_of(request)
    if data is None:
        return error(400, "invalid_body", "send a JSON object")
    problems = check_post(data, True)
    if problems:
        return invalid(problems)
    for name in ("title", "body", "author", "published"):
        if name in data:
            post[name] = data[name]
    if "tags" in data:
        post["tags"] = sorted(set(data["tags"]))
    post["updated_at"] = now()
    state.set("post:" + str(post["id"]), post)
    return post


def comments(request, post):
    key = str(post["id"])
    if request["method"] == "POST":
        if not post["published"]:
            return error(409, "not_published", "comments are open on published posts only")
        data = body_of(request)
        if data is None:
            return error(400, "invalid_body", "send a JSON object")
        problems = [{"field": n, "message": "unknown field (allowed: author, text)"}
                    for n in sorted(set(data) - COMMENT_FIELDS)]
        for name, limit in (("author", 80), ("text", 2000)):
            problem = text_problem(data.get(name), limit, True)
            if problem:
                problems.append({"field": name, "message": problem})
        if problems:
            return invalid(problems)
        number = state.incr("comment_seq:" + key)
        comment = {"id": number, "post_id": post["id"], "author": data["author"], "text": data["text"],
                   "created_at": now()}
        state.set("comment:" + key + ":" + str(number), comment)
        post["comments"] = post["comments"] + 1
        state.set("post:" + key, post)
        return {"status": 201, "json": comment}
    numbers, problems = page_params(request["query"], config["comments_per_page"])
    if problems:
        return invalid(problems)
    found = []
    for number in range(1, (state.get("comment_seq:" + key) or 0) + 1):
        comment = state.get("comment:" + key + ":" + str(number))
        if comment is not None:
            found.append(comment)
    return paged(found, numbers)


def search(request):
    terms = WORD.findall((request["query"].get("q") or "").lower())
    if not terms:
        return error(400, "validation_failed", "q: give at least one word to search for",
                     [{"field": "q", "message": "give at least one word to search for"}])
    hits = []
    for post in all_posts():
        if not post["published"]:
            continue
        title = WORD.findall(post["title"].lower())
        body = WORD.findall(post["body"].lower())
        score = 0
        for term in terms:
            score += 3 * title.count(term) + body.count(term) + (5 if term in post["tags"] else 0)
        if score:
            hits.append({"id": post["id"], "title": post["title"], "score": score})
    hits.sort(key=lambda h: (-h["score"], h["id"]))
    return {"query": " ".join(terms), "total": len(hits), "items": hits[:20]}


def handle(request):
    parts = [p for p in request["path_params"]["rest"].split("/") if p]
    method = request["method"]
    if parts == ["search"] and method == "GET":
        return search(request)
    if not parts or parts[0] != "posts" or len(parts) > 3:
        return error(404, "not_found", "no such resource: " + request["path"])
    if len(parts) == 1:
        if method == "GET":
            return list_posts(request)
        if method == "POST":
            return create_post(request)
        return error(405, "method_not_allowed", "use GET or POST on /api/posts")
    post = load_post(parts[1])
    if post is None:
        return error(404, "not_found", "no post with id " + repr(parts[1])[:40])
    if len(parts) == 3:
        if parts[2] != "comments" or method not in ("GET", "POST"):
            return error(404, "not_found", "no such resource: " + request["path"])
        return comments(request, post)
    if method == "GET":
        return post
    if method == "PATCH":
        return change_post(request, post)
    if method == "DELETE":
        state.set("post:" + str(post["id"]), None)
        return {"status": 204}
    return error(405, "method_not_allowed", "use GET, PATCH or DELETE on a post")
