from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Note


@csrf_exempt
def notes(request):
    """GET lists the notes, one a line; POST text=... adds one."""
    if request.method == "POST":
        Note.objects.create(text=request.POST.get("text", ""))
    body = "".join(n.text + "\n" for n in Note.objects.order_by("id"))
    return HttpResponse(body, content_type="text/plain; charset=utf-8")
