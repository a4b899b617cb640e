# expect: timeout | memory -- str.translate over 10 M non-ASCII characters: one dict lookup per character in C
def before_request(request):
    text = "\u00e9" * 10000000
    for _ in range(5):
        text.translate({233: "e"})
