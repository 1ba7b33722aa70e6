from django.contrib import admin

from webapp.cases.models import Case, Image


class ImageInline(admin.TabularInline[Image, Case]):
    model = Image
    extra = 0
    fields = (
        "file",
        "original_filename",
        "width",
        "height",
        "sha256",
        "uploaded_by",
        "uploaded_at",
    )
    readonly_fields = fields
    can_delete = False


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin[Case]):
    list_display = (
        "id",
        "subject_ref",
        "body_site",
        "created_by",
        "review_state",
        "top_probability",
        "created_at",
    )
    list_filter = ("review_state", "body_site")
    search_fields = ("subject_ref",)
    list_select_related = ("created_by",)
    readonly_fields = ("review_state", "flagged_at", "top_probability", "created_at", "updated_at")
    inlines = (ImageInline,)


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin[Image]):
    list_display = (
        "id",
        "case",
        "original_filename",
        "width",
        "height",
        "uploaded_by",
        "uploaded_at",
    )
    list_select_related = ("case", "uploaded_by")
    search_fields = ("sha256", "original_filename")
    raw_id_fields = ("case",)
    readonly_fields = ("sha256", "width", "height", "format", "uploaded_at")
