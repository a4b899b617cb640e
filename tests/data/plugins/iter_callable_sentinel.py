# expect: timeout -- two-argument iter() feeding `in`: an endless C loop the timer never saw
def before_request(request):
    return 5 in iter(int, 1)
